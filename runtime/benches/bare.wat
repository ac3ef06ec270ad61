;; The physical limit for the benchmarks: plain exports on a module whose input the host
;; copies straight into linear memory (at 0), with no ABI in between. `length` reads every
;; input byte; `echo` copies the input to 128 KiB, where the host reads it back.
(module
  (memory (export "memory") 4)
  (func (export "length") (param $len i32) (result i32)
    (local $i i32)
    (local $sum i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $sum (i32.add (local.get $sum) (i32.load8_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.or (local.get $len) (i32.and (local.get $sum) (i32.const 0))))
  (func (export "echo") (param $len i32) (result i32)
    (memory.copy (i32.const 131072) (i32.const 0) (local.get $len))
    (local.get $len)))
