// packhost from Java: the same JAR as from Kotlin. Load a pack, call it, read its usage,
// catch a limit. bindings/kotlin/ci.sh compiles and runs this file against the built JAR:
//
//   javac -cp packhost.jar:gson.jar:kotlin-stdlib.jar -d out examples/jvm/PackhostExample.java
//   java -cp out:packhost.jar:jna.jar:gson.jar:kotlin-stdlib.jar PackhostExample plugins/dist

import dev.packhost.CallResult;
import dev.packhost.Pack;
import dev.packhost.PackException;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Path;
import java.util.Map;

public final class PackhostExample {
    public static void main(String[] args) throws PackException, CharacterCodingException {
        Path packs = Path.of(args.length > 0 ? args[0] : "plugins/dist");
        try (Pack textTools = Pack.load(packs.resolve("text_tools.wasm"))) {
            CallResult result = textTools.callJson("count_vowels", Map.of("text", "hello world"));
            System.out.println(result.getText());
            System.out.println("fuel " + result.getUsage().getFuelConsumed() + ", action "
                + result.getUsage().getAction());
        }
        Map<String, Object> limits = Map.of("limits", Map.of("timeout_ms", 200, "fuel", 1L << 50));
        try (Pack hostile = Pack.load(packs.resolve("hostile.wasm"), limits)) {
            hostile.call("spin", "");
        } catch (PackException.Timeout stopped) {
            System.out.println("stopped: " + stopped.getCode());
        }
    }
}
