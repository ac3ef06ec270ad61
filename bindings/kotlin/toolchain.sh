# Sourced by the Kotlin scripts: where the compiler and the JARs the package needs are. The
# JDK, JNA and Gson come from Debian, the compiler (and its standard library) from the npm
# package kotlin-compiler in bindings/kotlin/node_modules; scripts/setup.sh installs them.
KOTLIN_HOME="$root/bindings/kotlin/node_modules/kotlin-compiler"
KOTLINC="$KOTLIN_HOME/bin/kotlinc"
KOTLIN_STDLIB="$KOTLIN_HOME/lib/kotlin-stdlib.jar"
# For the suspending calls (Async.kt) only; the npm package ships it with the compiler.
KOTLIN_COROUTINES="$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar"
JVM_DEPENDENCIES="/usr/share/java/jna.jar:/usr/share/java/gson.jar"
for needed in "$KOTLINC" /usr/share/java/jna.jar /usr/share/java/gson.jar; do
    if [ ! -e "$needed" ]; then
        echo "$needed is missing: run \`make setup\`" >&2
        exit 1
    fi
done
