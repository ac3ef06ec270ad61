;; The physical limit for the benchmarks: plain exports on a module whose input the host
;; copies straight into linear memory (at 0), with no ABI in between. `length` returns the
;; length it is given (the input is already in memory, as a pack's would be); `echo` copies
;; the input to 128 KiB, where the host reads it back.
(module
  (memory (export "memory") 4)
  (func (export "length") (param $len i32) (result i32)
    (local.get $len))
  (func (export "echo") (param $len i32) (result i32)
    (memory.copy (i32.const 131072) (i32.const 0) (local.get $len))
    (local.get $len)))
