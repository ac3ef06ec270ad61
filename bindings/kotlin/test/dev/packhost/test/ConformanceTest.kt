// The Kotlin runner of the shared conformance suite (tests/conformance/README.md): every
// case on each engine (and each key-value backend for a `kv` case) through the public
// dev.packhost API, with the outputs, codes, logs and fuel the Rust runner gives.
package dev.packhost.test

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import dev.packhost.CallResult
import dev.packhost.CancelToken
import dev.packhost.Flow
import dev.packhost.HostFunction
import dev.packhost.LogRecord
import dev.packhost.Pack
import dev.packhost.PackException
import dev.packhost.Usage
import java.nio.file.Files
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong

private val ENGINES = listOf("native", "extism")
private val KV_BACKENDS = listOf("memory", "sqlite")
private val FLOW_FIELDS = setOf("flow", "flow_packs", "flow_input", "steps")
private val CASE_FIELDS = setOf(
    "name", "pack", "packs", "pack_file", "extism_manifest", "options", "actions", "then",
    "host_functions", "export", "input", "input_repeat", "output", "output_json", "error",
    "message_contains", "return_code", "logs", "context", "cancel_after_ms", "host_calls",
    "kv_ops", "audit", "fuel_pinned",
) + FLOW_FIELDS
private val CALL_FIELDS = CASE_FIELDS - FLOW_FIELDS - setOf(
    "name", "pack", "packs", "pack_file", "extism_manifest", "options", "actions", "then",
    "host_functions", "fuel_pinned",
)
private val STEP_FIELDS = CALL_FIELDS - "cancel_after_ms" + "pack"

/** What the suite's `fail` throws: the README names the class `LookupError`. */
class LookupError(message: String) : RuntimeException(message)

/** The suite's host functions (tests/conformance/README.md), written with the public API. */
val SUITE_FUNCTIONS: List<HostFunction> = listOf(
    HostFunction("reverse") { _, input -> input.reversedArray() },
    HostFunction("add") { _, input ->
        val args = JsonParser.parseString(input.decodeToString()).asJsonObject
        val sum = args["a"].asLong + args["b"].asLong
        JsonObject().apply { addProperty("sum", sum) }.toString().encodeToByteArray()
    },
    HostFunction("fail") { _, input -> throw LookupError(input.decodeToString()) },
    HostFunction("context_echo") { call, input ->
        JsonObject().apply {
            add("context", call.context ?: JsonNull.INSTANCE)
            addProperty("pack", call.packName)
        }.toString().encodeToByteArray()
    },
)

/** Numbers the fresh key-value stores of this process, so no two runs share one. */
private val FRESH = AtomicLong()

class ConformanceTest : Suite() {
    private val fuel: JsonObject = JsonParser.parseString(
        Files.readString(CONFORMANCE.resolve("fuel.json")),
    ).asJsonObject
    private val kvFolder = Files.createTempDirectory("packhost-kotlin-kv")

    init {
        val cases = Files.list(CONFORMANCE.resolve("cases")).use { files ->
            files.filter { it.toString().endsWith(".json") }.sorted().toList()
        }.flatMap { file ->
            JsonParser.parseString(Files.readString(file)).asJsonObject["cases"].asJsonArray
                .flatMap { onePerPack(it.asJsonObject) }
        }
        test("conformance: the suite is not empty and names are unique") {
            val names = cases.map { it["name"].asString }
            check(names.isNotEmpty()) { "no conformance cases found" }
            check(names.size == names.toSet().size) { "duplicate case names" }
        }
        for (case in cases) {
            for (engine in ENGINES) {
                for (backend in kvBackends(case)) {
                    val label = if (backend == null) engine else "$engine, kv $backend"
                    test("${case["name"].asString} [$label]") { run(case, engine, backend) }
                }
            }
        }
    }

    private fun onePerPack(case: JsonObject): List<JsonObject> {
        val packs = case["packs"] ?: return listOf(case)
        return packs.asJsonArray.map { pack ->
            case.deepCopy().apply {
                remove("packs")
                addProperty("name", "${case["name"].asString}/${pack.asString}")
                add("pack", pack)
            }
        }
    }

    private fun kvBackends(case: JsonObject): List<String?> {
        val options = case["options"]
        return if (options is JsonObject && options["kv"] is JsonObject) KV_BACKENDS else listOf(null)
    }

    /** The case's options with `engine` set unless the case chose one, mounts made absolute,
     * and for a `kv` case the backend and a fresh store. */
    private fun optionsFor(case: JsonObject, engine: String, backend: String?): JsonElement {
        val given = case["options"]
        if (given != null && given !is JsonNull && given !is JsonObject) return given
        val options = (given as? JsonObject)?.deepCopy() ?: JsonObject()
        absoluteMounts(options)
        if (!options.has("engine")) options.addProperty("engine", engine)
        val kv = options["kv"]
        if (kv is JsonObject) {
            val fresh = FRESH.incrementAndGet()
            if (!kv.has("backend")) kv.addProperty("backend", backend)
            if (!kv.has("path")) {
                val path = if (backend == "sqlite") {
                    kvFolder.resolve("$fresh.sqlite3").toString()
                } else {
                    "conformance-kotlin-${ProcessHandle.current().pid()}-$fresh"
                }
                kv.addProperty("path", path)
            }
        }
        return options
    }

    private fun absoluteMounts(holder: JsonObject) {
        val paths = holder["allowed_paths"] as? JsonObject ?: return
        val mounts = JsonObject()
        for ((source, guest) in paths.entrySet()) {
            val prefix = if (source.startsWith("ro:")) "ro:" else ""
            mounts.add(prefix + CONFORMANCE.resolve(source.removePrefix(prefix)).toString(), guest)
        }
        holder.add("allowed_paths", mounts)
    }

    private fun load(case: JsonObject, options: JsonElement, functions: List<HostFunction>): Pack {
        val given = listOf("pack", "pack_file", "extism_manifest").filter { case.has(it) }
        check(given.size == 1) { "give exactly one of pack, pack_file and extism_manifest" }
        return when (given.single()) {
            "pack" -> Pack.load(packPath(case["pack"].asString), options, functions)
            "pack_file" -> Pack.load(CONFORMANCE.resolve(case["pack_file"].asString).toString(), options, functions)
            else -> {
                val manifest = case["extism_manifest"].asJsonObject.deepCopy()
                absoluteMounts(manifest)
                for (module in manifest["wasm"]?.asJsonArray ?: JsonArray()) {
                    val entry = module.asJsonObject
                    if (entry.has("path")) entry.addProperty("path", DIST.resolve(entry["path"].asString).toString())
                }
                Pack.fromExtismManifest(manifest, options, functions)
            }
        }
    }

    private fun run(case: JsonObject, engine: String, backend: String?) {
        val unknown = case.keySet() - CASE_FIELDS
        check(unknown.isEmpty()) { "fields this runner does not know: $unknown" }
        val options = optionsFor(case, engine, backend)
        val functions = if (case["host_functions"]?.asBoolean == true) SUITE_FUNCTIONS else emptyList()
        val name = case["name"].asString
        if (case.has("flow")) {
            report(runFlow(case, engine, options, functions))
            return
        }
        val pack = try {
            load(case, options, functions)
        } catch (error: PackException) {
            check(case.has("error")) { "load failed with ${error.code}: ${error.message}" }
            report(checkError(error, case))
            return
        }
        pack.use {
            val problems = mutableListOf<String>()
            if (case.has("actions")) {
                val wanted = case["actions"].asJsonArray.map { it.asString }
                if (pack.actions != wanted) problems += "actions ${pack.actions}, expected $wanted"
            }
            val fuelPinned = case["fuel_pinned"]?.asBoolean ?: true
            if (case.has("export")) {
                problems += runCall(pack, engine, name, JsonObject().apply {
                    for ((key, value) in case.entrySet()) if (key in CALL_FIELDS) add(key, value)
                }, fuelPinned)
            } else if (case.has("error")) {
                problems += "loaded, expected error ${case["error"].asString}"
            }
            for ((index, stepElement) in (case["then"]?.asJsonArray ?: JsonArray()).withIndex()) {
                val step = stepElement.asJsonObject
                val key = "$name/then/$index"
                val stepUnknown = step.keySet() - STEP_FIELDS
                check(stepUnknown.isEmpty()) { "$key: fields this runner does not know: $stepUnknown" }
                val other = step["pack"]?.asString
                val target = if (other == null) pack else try {
                    Pack.load(packPath(other), options)
                } catch (error: PackException) {
                    problems += "then[$index]: loading $other failed with ${error.code}: ${error.message}"
                    continue
                }
                val call = step.deepCopy().apply { remove("pack") }
                problems += runCall(target, engine, key, call, fuelPinned).map { "then[$index]: $it" }
                if (target !== pack) target.close()
            }
            report(problems)
        }
    }

    private fun report(problems: List<String>) {
        check(problems.isEmpty()) { problems.joinToString("\n") }
    }

    private fun runCall(pack: Pack, engine: String, key: String, call: JsonObject, fuelPinned: Boolean): List<String> {
        val unknown = call.keySet() - CALL_FIELDS
        check(unknown.isEmpty()) { "$key: fields this runner does not know: $unknown" }
        val export = call["export"].asString
        val input = (call["input"]?.asString ?: "").repeat(call["input_repeat"]?.asInt ?: 1).encodeToByteArray()
        val context = call["context"]
        val result = try {
            cancelledAfter(call["cancel_after_ms"]?.asLong) { cancel ->
                when (export) {
                    "pre" -> pack.pre(input, context, cancel)
                    "post" -> pack.post(input, context, cancel)
                    else -> pack.call(export, input, context, cancel)
                }
            }
        } catch (error: PackException) {
            if (!call.has("error")) return listOf("failed with ${error.code}: ${error.message}, expected success")
            return checkError(error, call) + checkLogs(error.logs, call) +
                checkUsage(error.usage, call) + checkAudit(error.audit, call)
        }
        if (call.has("error")) {
            return listOf("succeeded with ${result.output.decodeToString()}, expected error ${call["error"].asString}")
        }
        val problems = mutableListOf<String>()
        call["output"]?.let { wanted ->
            if (!result.output.contentEquals(wanted.asString.encodeToByteArray())) {
                problems += "output ${result.output.decodeToString()}, expected ${wanted.asString}"
            }
        }
        call["output_json"]?.let { wanted -> problems += checkJsonOutput(result, wanted) }
        return problems + checkLogs(result.logs, call) + checkFuel(result.usage.fuelConsumed, engine, key, fuelPinned) +
            checkUsage(result.usage, call) + checkAudit(result.audit, call)
    }

    private fun checkJsonOutput(result: CallResult, wanted: JsonElement): List<String> {
        val actual = try {
            result.json()
        } catch (error: Exception) {
            return listOf("output is not JSON ($error): ${result.output.decodeToString()}")
        }
        return if (actual == wanted) emptyList() else listOf("output_json $actual, expected $wanted")
    }

    /** Runs [call] with a cancel token when [ms] is given: cancelled before the call for 0,
     * else from another thread [ms] milliseconds after the call starts. */
    private fun <T> cancelledAfter(ms: Long?, call: (CancelToken?) -> T): T {
        if (ms == null) return call(null)
        val token = CancelToken()
        if (ms == 0L) {
            token.cancel()
            return call(token)
        }
        val timer = Executors.newSingleThreadScheduledExecutor()
        try {
            timer.schedule({ token.cancel() }, ms, TimeUnit.MILLISECONDS)
            return call(token)
        } finally {
            // A call that ended first leaves no timer running into the next case.
            timer.shutdownNow()
            timer.awaitTermination(5, TimeUnit.SECONDS)
        }
    }

    private fun runFlow(case: JsonObject, engine: String, options: JsonElement, functions: List<HostFunction>): List<String> {
        val context = case["context"]
        val packs = mutableMapOf<String, Pack>()
        try {
            for ((name, sample) in case["flow_packs"].asJsonObject.entrySet()) {
                packs[name] = Pack.load(packPath(sample.asString), options, functions)
            }
            val result = try {
                Flow(case["flow"], packs).use { it.run(case["flow_input"], context) }
            } catch (error: PackException) {
                if (!case.has("error")) return listOf("failed with ${error.code}: ${error.message}, expected success")
                return checkError(error, case)
            }
            if (case.has("error")) return listOf("succeeded with ${result["output"]}, expected error ${case["error"].asString}")
            val problems = mutableListOf<String>()
            case["output_json"]?.let { wanted ->
                if (result["output"] != wanted) problems += "output_json ${result["output"]}, expected $wanted"
            }
            val steps = JsonArray().apply {
                for (step in result["steps"].asJsonArray) {
                    add(JsonObject().apply {
                        add("id", step.asJsonObject["id"])
                        add("status", step.asJsonObject["status"])
                    })
                }
            }
            case["steps"]?.let { wanted -> if (steps != wanted) problems += "steps $steps, expected $wanted" }
            val contexts = listOf(result["usage"].asJsonObject["context"]) +
                result["steps"].asJsonArray.map { it.asJsonObject["usage"] }
                    .filter { it != null && it !is JsonNull }
                    .map { it.asJsonObject["context"] }
            for (actual in contexts) {
                if (!sameJson(actual, context)) problems += "usage context $actual, expected $context"
            }
            return problems + checkFuel(
                result["usage"].asJsonObject["fuel_consumed"].asLong, engine, case["name"].asString,
                case["fuel_pinned"]?.asBoolean ?: true,
            )
        } finally {
            packs.values.forEach { it.close() }
        }
    }

    private fun checkError(error: PackException, expect: JsonObject): List<String> {
        val problems = mutableListOf<String>()
        val wanted = expect["error"]?.asString
        if (error.code != wanted) problems += "error ${error.code}: ${error.message}, expected $wanted"
        val className = error.code.split("_").joinToString("") { it.replaceFirstChar(Char::uppercase) }
        if (error::class.simpleName != className) problems += "${error::class.simpleName} is not the class of ${error.code}"
        expect["message_contains"]?.asString?.let { fragment ->
            if (!error.message.orEmpty().contains(fragment)) problems += "message ${error.message} lacks $fragment"
        }
        if (expect.has("return_code") && error.returnCode != expect["return_code"].asInt) {
            problems += "return code ${error.returnCode}, expected ${expect["return_code"]}"
        }
        return problems
    }

    private fun checkLogs(logs: List<LogRecord>, expect: JsonObject): List<String> {
        val wanted = expect["logs"] ?: return emptyList()
        val actual = JsonArray().apply {
            for (record in logs) {
                add(JsonObject().apply {
                    addProperty("level", record.level)
                    addProperty("message", record.message)
                })
            }
        }
        return if (actual == wanted) emptyList() else listOf("logs $actual, expected $wanted")
    }

    /** Every successful call burns what fuel.json records for it on this engine; a missing
     * entry fails, so a stale fuel.json cannot pass unnoticed. A case with `fuel_pinned: false`
     * (a pack whose builds are not reproducible) has no entry and need only burn some fuel. */
    private fun checkFuel(consumed: Long, engine: String, key: String, pinned: Boolean): List<String> {
        if (!pinned) return if (consumed > 0) emptyList() else listOf("no fuel burnt")
        val wanted = fuel[engine]?.asJsonObject?.get(key)
            ?: return listOf("no fuel.json entry for $key on $engine (bless with the Rust runner)")
        return if (consumed == wanted.asLong) emptyList() else listOf("fuel $consumed, expected $wanted (fuel.json)")
    }

    private fun checkUsage(usage: Usage?, expect: JsonObject): List<String> {
        val problems = mutableListOf<String>()
        expect["host_calls"]?.let { wanted ->
            if (usage?.hostCalls != wanted.asLong) problems += "host calls ${usage?.hostCalls}, expected $wanted"
        }
        expect["kv_ops"]?.let { wanted ->
            if (usage?.kvOps != wanted.asLong) problems += "kv ops ${usage?.kvOps}, expected $wanted"
        }
        if (usage != null && !sameJson(usage.context, expect["context"])) {
            problems += "usage context ${usage.context}, expected ${expect["context"]}"
        }
        return problems
    }

    private fun checkAudit(audit: List<JsonObject>, expect: JsonObject): List<String> {
        val wanted = expect["audit"]?.asJsonArray ?: return emptyList()
        val matches = audit.size == wanted.size() && audit.zip(wanted).all { (entry, want) ->
            want.asJsonObject.entrySet().all { (key, value) -> entry.has(key) && entry[key] == value }
        }
        return if (matches) emptyList() else listOf("audit $audit, expected $wanted")
    }

    /** JSON values equal, an absent value and JSON null alike. */
    private fun sameJson(actual: JsonElement?, wanted: JsonElement?): Boolean =
        (actual ?: JsonNull.INSTANCE) == (wanted ?: JsonNull.INSTANCE)
}
