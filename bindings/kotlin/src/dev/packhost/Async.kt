// Suspending calls for coroutines (kotlinx-coroutines-core-jvm, which the npm kotlin-compiler
// ships): a call or flow run on Dispatchers.IO, cancelled through its CancelToken when the
// calling coroutine is. Only callers of these functions need kotlinx-coroutines on the
// classpath.
package dev.packhost

import com.google.gson.JsonObject
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.awaitCancellation
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * Runs [work] with a fresh CancelToken on Dispatchers.IO; cancelling the calling coroutine
 * cancels the token, so a running call ends (with `cancelled`) instead of holding its
 * thread to its timeout, and the coroutine then completes as cancelled.
 */
private suspend fun <T> cancellable(work: (CancelToken) -> T): T = coroutineScope {
    // Not closed here: the watcher may cancel it after this returns; the cleaner frees it.
    CancelToken().let { token ->
        // Cancelled with this scope: when the caller is cancelled, or once the work is done.
        val watcher = launch {
            try {
                awaitCancellation()
            } finally {
                token.cancel()
            }
        }
        try {
            withContext(Dispatchers.IO) { work(token) }
        } catch (cancelled: PackException.Cancelled) {
            // Cancelled by this coroutine's own cancellation: complete as cancelled, as a
            // suspending function should, not with the call's exception.
            ensureActive()
            throw cancelled
        } finally {
            watcher.cancel()
        }
    }
}

/** [Pack.call] as a suspending function, off the caller's thread, cancelled with the coroutine. */
@Throws(PackException::class)
suspend fun Pack.callAsync(action: String, input: ByteArray, context: Any? = null): CallResult =
    cancellable { token -> call(action, input, context, token) }

/** [Pack.call] with text input, sent as UTF-8, as a suspending function. */
@Throws(PackException::class)
suspend fun Pack.callAsync(action: String, input: String, context: Any? = null): CallResult =
    callAsync(action, input.encodeToByteArray(), context)

/** [Flow.run] as a suspending function, off the caller's thread, cancelled with the coroutine. */
@Throws(PackException::class)
suspend fun Flow.runAsync(input: Any? = null, context: Any? = null): JsonObject =
    cancellable { token -> run(input, context, token) }
