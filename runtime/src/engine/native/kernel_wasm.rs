//! The hot half of the Extism kernel as wasm inside the pack: at compile time the native
//! engine gives an Extism plugin a second memory holding kernel memory, and wasm functions
//! of its own for `load_*`, `store_*` and `input_load_*`, so that a plugin built with
//! extism-pdk alone, which moves its input and output 8 bytes per call, makes those calls
//! without leaving wasm.
//!
//! The host keeps everything else: the block table (`kernel.rs`), allocation, the memory
//! limit, and the slow paths. Each injected function checks its offset against a bound the
//! host keeps in an exported global; inside it, it reads or writes the kernel memory
//! directly, and outside it, it calls the original import, whose host function fills the
//! input in, refuses the offset with the same message as before, or answers it. So bounds
//! checks stay exact: a bound is never past the bytes in use.

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{BlockType, Function, Instruction, MemArg, MemoryType, SectionId};
use wasmparser::{Parser, Payload, TypeRef, ValType};

use crate::error::{Error, Result};
use crate::module::EXTISM_ENV;

/// Bumped whenever the rewrite's output changes, so compiled code cached on disk is made
/// again (the cache's folder name holds it): code cached from another rewrite would run
/// with other fuel counts, or not at all.
pub(super) const REWRITE_VERSION: u32 = 1;

/// The export under which the rewritten pack hands the host its kernel memory.
pub(super) const MEMORY_EXPORT: &str = "__packhost_kernel_memory";

/// The bounds the host keeps current, exported as mutable `i64` globals. Each is the first
/// offset (or input index) the fast path refuses, so `0` sends everything to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bound {
    /// Kernel bytes in use: a byte at `offset < bound` may be read or written.
    Byte = 0,
    /// Kernel bytes in use less 7: a word at `offset < bound` lies inside them.
    Word = 1,
    /// Where the input's copy starts in kernel memory (not a bound: an address).
    InputBase = 2,
    /// The input's length once copied into kernel memory, else 0.
    InputByte = 3,
    /// The input's length less 7 once copied, else 0.
    InputWord = 4,
}

impl Bound {
    pub(super) const ALL: [Bound; 5] = [
        Bound::Byte,
        Bound::Word,
        Bound::InputBase,
        Bound::InputByte,
        Bound::InputWord,
    ];

    pub(super) fn export_name(self) -> &'static str {
        match self {
            Bound::Byte => "__packhost_kernel_byte_bound",
            Bound::Word => "__packhost_kernel_word_bound",
            Bound::InputBase => "__packhost_kernel_input_base",
            Bound::InputByte => "__packhost_kernel_input_byte_bound",
            Bound::InputWord => "__packhost_kernel_input_word_bound",
        }
    }

    pub(super) fn position(self) -> u32 {
        Bound::ALL
            .iter()
            .position(|bound| *bound == self)
            .unwrap_or(0) as u32
    }
}

/// One ABI function served in wasm.
#[derive(Clone, Copy)]
struct HotFunction {
    name: &'static str,
    /// Reads the input's copy (else a kernel block).
    input: bool,
    /// Moves 8 bytes (else 1).
    word: bool,
    store: bool,
}

const HOT_FUNCTIONS: [HotFunction; 6] = [
    HotFunction::load("load_u8", false),
    HotFunction::load("load_u64", true),
    HotFunction::store("store_u8", false),
    HotFunction::store("store_u64", true),
    HotFunction::input("input_load_u8", false),
    HotFunction::input("input_load_u64", true),
];

impl HotFunction {
    const fn load(name: &'static str, word: bool) -> Self {
        HotFunction {
            name,
            input: false,
            word,
            store: false,
        }
    }

    const fn store(name: &'static str, word: bool) -> Self {
        HotFunction {
            name,
            input: false,
            word,
            store: true,
        }
    }

    const fn input(name: &'static str, word: bool) -> Self {
        HotFunction {
            name,
            input: true,
            word,
            store: false,
        }
    }

    /// The ABI's signature: an `i64` offset (and for stores the value), a value for loads.
    fn signature_is(&self, params: &[ValType], results: &[ValType]) -> bool {
        let value = if self.word {
            ValType::I64
        } else {
            ValType::I32
        };
        if self.store {
            params == [ValType::I64, value] && results.is_empty()
        } else {
            params == [ValType::I64] && results == [value]
        }
    }

    /// The bound the fast path checks.
    fn bound(&self) -> Bound {
        match (self.input, self.word) {
            (false, false) => Bound::Byte,
            (false, true) => Bound::Word,
            (true, false) => Bound::InputByte,
            (true, true) => Bound::InputWord,
        }
    }

    /// Appends `if offset < bound { access kernel memory } else { call the host }`, with
    /// the offset in local `offset` (and already on the stack when `offset_pushed`) and a
    /// store's value in local `value`.
    fn emit(
        &self,
        f: &mut Function,
        host: u32,
        at: &Placement,
        (offset, offset_pushed): (u32, bool),
        value: u32,
    ) {
        use wasm_encoder::ValType as V;
        let global = |bound: Bound| at.first_global + bound.position();
        let arg = MemArg {
            offset: 0,
            align: if self.word { 3 } else { 0 },
            memory_index: at.memory,
        };
        let (access, result) = match (self.store, self.word) {
            (false, false) => (Instruction::I32Load8U(arg), BlockType::Result(V::I32)),
            (false, true) => (Instruction::I64Load(arg), BlockType::Result(V::I64)),
            (true, false) => (Instruction::I32Store8(arg), BlockType::Empty),
            (true, true) => (Instruction::I64Store(arg), BlockType::Empty),
        };
        if !offset_pushed {
            f.instruction(&Instruction::LocalGet(offset));
        }
        f.instruction(&Instruction::GlobalGet(global(self.bound())))
            .instruction(&Instruction::I64LtU)
            .instruction(&Instruction::If(result));
        if self.input {
            f.instruction(&Instruction::GlobalGet(global(Bound::InputBase)))
                .instruction(&Instruction::LocalGet(offset))
                .instruction(&Instruction::I64Add);
        } else {
            f.instruction(&Instruction::LocalGet(offset));
        }
        // Bounds never pass 4 GiB: kernel memory is a 32-bit memory.
        f.instruction(&Instruction::I32WrapI64);
        if self.store {
            f.instruction(&Instruction::LocalGet(value));
        }
        f.instruction(&access)
            .instruction(&Instruction::Else)
            .instruction(&Instruction::LocalGet(offset));
        if self.store {
            f.instruction(&Instruction::LocalGet(value));
        }
        f.instruction(&Instruction::Call(host))
            .instruction(&Instruction::End);
    }

    /// The function that stands for the import wherever it is not called directly (a
    /// table, an export, `ref.func`).
    fn body(&self, host: u32, at: &Placement) -> Function {
        let mut f = Function::new([]);
        self.emit(&mut f, host, at, (0, false), 1);
        f.instruction(&Instruction::End);
        f
    }

    /// The same access in place of a `call`, with the arguments on the stack and the
    /// caller's scratch locals to hold them. It burns exactly the fuel of calling the
    /// injected function instead (the `call` becomes the first `local.set`), so a pack's
    /// fuel never depends on which of its call sites reach the kernel through a table.
    fn inline(&self, f: &mut Function, host: u32, at: &Placement, scratch: Scratch) {
        if self.store {
            let value = if self.word {
                scratch.word
            } else {
                scratch.byte
            };
            f.instruction(&Instruction::LocalSet(value))
                .instruction(&Instruction::LocalTee(scratch.offset));
            self.emit(f, host, at, (scratch.offset, true), value);
        } else {
            f.instruction(&Instruction::LocalSet(scratch.offset));
            self.emit(f, host, at, (scratch.offset, false), 0);
        }
    }
}

/// Where the injected items sit in the rewritten module.
#[derive(Clone, Copy)]
struct Placement {
    memory: u32,
    first_global: u32,
}

/// The locals a function gets to hold a hot call's arguments while it is inlined.
#[derive(Clone, Copy)]
struct Scratch {
    offset: u32,
    word: u32,
    byte: u32,
}

/// What a first pass over the module found.
#[derive(Default)]
struct Layout {
    /// Function imports and defined functions.
    functions: u32,
    memories: u32,
    globals: u32,
    /// The hot ABI imports: (function index, type index, which).
    hot: Vec<(u32, u32, HotFunction)>,
    extism_plugin: bool,
    /// The parameter count of each defined function, in order.
    defined_params: Vec<u32>,
}

impl Layout {
    fn of(wasm: &[u8]) -> Result<Self> {
        let mut layout = Layout::default();
        let mut func_types: Vec<(Vec<ValType>, Vec<ValType>)> = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(invalid)? {
                Payload::TypeSection(reader) => {
                    for ty in reader.into_iter_err_on_gc_types() {
                        let ty = ty.map_err(invalid)?;
                        func_types.push((ty.params().to_vec(), ty.results().to_vec()));
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(invalid)?;
                        match import.ty {
                            TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                                // Host functions hand back kernel blocks too: any import
                                // but WASI's makes the module a plugin.
                                if !import.module.starts_with("wasi") {
                                    layout.extism_plugin = true;
                                }
                                if import.module == EXTISM_ENV {
                                    let hot = HOT_FUNCTIONS.iter().find(|hot| {
                                        hot.name == import.name
                                            && func_types.get(ty as usize).is_some_and(
                                                |(params, results)| {
                                                    hot.signature_is(params, results)
                                                },
                                            )
                                    });
                                    if let Some(hot) = hot {
                                        layout.hot.push((layout.functions, ty, *hot));
                                    }
                                }
                                layout.functions += 1;
                            }
                            TypeRef::Memory(_) => layout.memories += 1,
                            TypeRef::Global(_) => layout.globals += 1,
                            TypeRef::Table(_) | TypeRef::Tag(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    layout.functions += reader.count();
                    for ty in reader {
                        let ty = ty.map_err(invalid)?;
                        let params = func_types.get(ty as usize).map_or(0, |(p, _)| p.len());
                        layout.defined_params.push(params as u32);
                    }
                }
                Payload::MemorySection(reader) => layout.memories += reader.count(),
                Payload::GlobalSection(reader) => layout.globals += reader.count(),
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let name = export.map_err(invalid)?.name;
                        if name == MEMORY_EXPORT
                            || Bound::ALL.iter().any(|b| b.export_name() == name)
                        {
                            return Err(Error::invalid_pack(format!(
                                "the pack exports {name:?}, a name packhost keeps for itself"
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(layout)
    }
}

fn invalid(err: wasmparser::BinaryReaderError) -> Error {
    Error::invalid_pack(err.to_string())
}

/// `wasm` with kernel memory and the hot ABI functions inside it, or `None` for a module
/// that is no Extism plugin (it imports no functions, or WASI's only).
///
/// # Errors
/// `invalid_pack` when the module cannot be parsed.
pub(super) fn inject(wasm: &[u8]) -> Result<Option<Vec<u8>>> {
    let layout = Layout::of(wasm)?;
    if !layout.extism_plugin {
        return Ok(None);
    }
    let mut rewriter = Rewriter {
        first_injected: layout.functions,
        at: Placement {
            memory: layout.memories,
            first_global: layout.globals,
        },
        hot: layout.hot,
        defined_params: layout.defined_params,
        bodies: 0,
        written: Vec::new(),
    };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|err| Error::invalid_pack(format!("could not prepare the pack: {err}")))?;
    // Sections the module lacks, after its last one.
    rewriter.add_missing(&mut module, None);
    Ok(Some(module.finish()))
}

/// Re-encodes the module with calls to the hot imports sent to the injected functions,
/// and the kernel memory, bound globals, injected functions and their exports appended.
struct Rewriter {
    /// The index of the first injected function: after every existing one.
    first_injected: u32,
    at: Placement,
    hot: Vec<(u32, u32, HotFunction)>,
    defined_params: Vec<u32>,
    /// Function bodies rewritten so far.
    bodies: usize,
    /// The sections already written with the injected items.
    written: Vec<SectionId>,
}

/// The sections the rewrite adds to, in the order a module holds them.
const ADDED_SECTIONS: [SectionId; 5] = [
    SectionId::Function,
    SectionId::Memory,
    SectionId::Global,
    SectionId::Export,
    SectionId::Code,
];

/// Where a section goes in a module (the binary format's order, not the ids').
fn order(id: SectionId) -> u8 {
    match id {
        SectionId::Custom => 0,
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
    }
}

impl Rewriter {
    fn add_functions(&mut self, functions: &mut wasm_encoder::FunctionSection) {
        for (_, ty, _) in &self.hot {
            functions.function(*ty);
        }
        self.written.push(SectionId::Function);
    }

    fn add_memory(&mut self, memories: &mut wasm_encoder::MemorySection) {
        // No page until the host allocates a block: an instance that never uses the kernel
        // holds nothing for it.
        memories.memory(MemoryType {
            minimum: 0,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        self.written.push(SectionId::Memory);
    }

    fn add_globals(&mut self, globals: &mut wasm_encoder::GlobalSection) {
        for _ in Bound::ALL {
            globals.global(
                wasm_encoder::GlobalType {
                    val_type: wasm_encoder::ValType::I64,
                    mutable: true,
                    shared: false,
                },
                &wasm_encoder::ConstExpr::i64_const(0),
            );
        }
        self.written.push(SectionId::Global);
    }

    fn add_exports(&mut self, exports: &mut wasm_encoder::ExportSection) {
        exports.export(
            MEMORY_EXPORT,
            wasm_encoder::ExportKind::Memory,
            self.at.memory,
        );
        for bound in Bound::ALL {
            exports.export(
                bound.export_name(),
                wasm_encoder::ExportKind::Global,
                self.at.first_global + bound.position(),
            );
        }
        self.written.push(SectionId::Export);
    }

    fn add_code(&mut self, code: &mut wasm_encoder::CodeSection) {
        for (host, _, hot) in &self.hot {
            code.function(&hot.body(*host, &self.at));
        }
        self.written.push(SectionId::Code);
    }

    /// Writes, as sections of their own, the added sections the module lacks that belong
    /// before `before` (every one left, at the end).
    fn add_missing(&mut self, module: &mut wasm_encoder::Module, before: Option<SectionId>) {
        for id in ADDED_SECTIONS {
            let due = before.is_none_or(|before| order(id) < order(before));
            if !due || self.written.contains(&id) {
                continue;
            }
            match id {
                SectionId::Function => {
                    let mut section = wasm_encoder::FunctionSection::new();
                    self.add_functions(&mut section);
                    module.section(&section);
                }
                SectionId::Memory => {
                    let mut section = wasm_encoder::MemorySection::new();
                    self.add_memory(&mut section);
                    module.section(&section);
                }
                SectionId::Global => {
                    let mut section = wasm_encoder::GlobalSection::new();
                    self.add_globals(&mut section);
                    module.section(&section);
                }
                SectionId::Export => {
                    let mut section = wasm_encoder::ExportSection::new();
                    self.add_exports(&mut section);
                    module.section(&section);
                }
                _ => {
                    let mut section = wasm_encoder::CodeSection::new();
                    self.add_code(&mut section);
                    module.section(&section);
                }
            }
        }
    }
}

impl Reencode for Rewriter {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> std::result::Result<u32, reencode::Error> {
        let injected = self.hot.iter().position(|(host, _, _)| *host == func);
        Ok(injected.map_or(func, |at| self.first_injected + at as u32))
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> std::result::Result<(), reencode::Error> {
        reencode::utils::parse_function_section(self, functions, section)?;
        self.add_functions(functions);
        Ok(())
    }

    fn parse_memory_section(
        &mut self,
        memories: &mut wasm_encoder::MemorySection,
        section: wasmparser::MemorySectionReader<'_>,
    ) -> std::result::Result<(), reencode::Error> {
        reencode::utils::parse_memory_section(self, memories, section)?;
        self.add_memory(memories);
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> std::result::Result<(), reencode::Error> {
        reencode::utils::parse_global_section(self, globals, section)?;
        self.add_globals(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> std::result::Result<(), reencode::Error> {
        reencode::utils::parse_export_section(self, exports, section)?;
        self.add_exports(exports);
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> std::result::Result<(), reencode::Error> {
        reencode::utils::parse_code_section(self, code, section)?;
        self.add_code(code);
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> std::result::Result<(), reencode::Error> {
        let params = self.defined_params.get(self.bodies).copied().unwrap_or(0);
        self.bodies += 1;
        let hot = self.hot.clone();
        let hot_call = |op: &wasmparser::Operator<'_>| match op {
            wasmparser::Operator::Call { function_index } => hot
                .iter()
                .find(|(host, _, _)| host == function_index)
                .map(|(host, _, hot)| (*host, *hot)),
            _ => None,
        };
        let mut reader = func.get_operators_reader()?;
        let mut calls_hot = false;
        while !reader.eof() {
            calls_hot |= hot_call(&reader.read()?).is_some();
        }
        if !calls_hot {
            return reencode::utils::parse_function_body(self, code, func);
        }
        // Three scratch locals after the function's own, for the inlined calls' arguments.
        let mut locals = Vec::new();
        let mut declared = 0u32;
        for pair in func.get_locals_reader()? {
            let (count, ty) = pair?;
            declared += count;
            locals.push((count, self.val_type(ty)?));
        }
        let first = params + declared;
        let scratch = Scratch {
            offset: first,
            word: first + 1,
            byte: first + 2,
        };
        locals.push((2, wasm_encoder::ValType::I64));
        locals.push((1, wasm_encoder::ValType::I32));
        let mut f = Function::new(locals);
        let mut reader = func.get_operators_reader()?;
        while !reader.eof() {
            let op = reader.read()?;
            match hot_call(&op) {
                Some((host, hot)) => hot.inline(&mut f, host, &self.at, scratch),
                None => {
                    f.instruction(&self.instruction(op)?);
                }
            }
        }
        code.function(&f);
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> std::result::Result<(), reencode::Error> {
        // Copied as they are: no index moves, so the name section stays right.
        module.section(&reencode::utils::custom_section(self, section));
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> std::result::Result<(), reencode::Error> {
        if let Some(before) = before {
            self.add_missing(module, Some(before));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(wasm: &[u8]) {
        wasmparser::Validator::new()
            .validate_all(wasm)
            .expect("the rewritten module validates");
    }

    #[test]
    fn modules_that_are_no_extism_plugin_are_left_alone() {
        let wasm = wat::parse_str(r#"(module (func (export "run")))"#).unwrap();
        assert!(inject(&wasm).unwrap().is_none());
    }

    #[test]
    fn a_plugin_without_the_sections_the_rewrite_adds_to_gets_them() {
        let wasm = wat::parse_str(
            r#"(module (import "extism:host/env" "load_u64" (func (param i64) (result i64))))"#,
        )
        .unwrap();
        let rewritten = inject(&wasm).unwrap().unwrap();
        validate(&rewritten);
        let exports: Vec<String> = Parser::new(0)
            .parse_all(&rewritten)
            .filter_map(|payload| match payload.unwrap() {
                Payload::ExportSection(reader) => Some(
                    reader
                        .into_iter()
                        .map(|export| export.unwrap().name.to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(exports.contains(&MEMORY_EXPORT.to_string()));
        assert_eq!(exports.len(), 1 + Bound::ALL.len());
    }

    #[test]
    fn calls_to_hot_imports_go_to_the_injected_functions() {
        let wasm = wat::parse_str(
            r#"(module
                (import "extism:host/env" "input_load_u64" (func $in (param i64) (result i64)))
                (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
                (memory (export "memory") 1)
                (global $g (mut i32) (i32.const 0))
                (func (export "run") (result i32)
                    (drop (call $in (i64.const 0)))
                    (drop (call $alloc (i64.const 8)))
                    (i32.const 0))
                (data (i32.const 0) "hi"))"#,
        )
        .unwrap();
        let rewritten = inject(&wasm).unwrap().unwrap();
        validate(&rewritten);
        // Functions 0 and 1 are the imports, 2 is `run`, 3 the injected input_load_u64: `run`
        // has the access inlined, and calls the host only on its slow path.
        let mut calls = Vec::new();
        for payload in Parser::new(0).parse_all(&rewritten) {
            if let Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut reader = body.get_operators_reader().unwrap();
                let mut called = Vec::new();
                while !reader.eof() {
                    if let wasmparser::Operator::Call { function_index } = reader.read().unwrap() {
                        called.push(function_index);
                    }
                }
                calls.push(called);
            }
        }
        assert_eq!(
            calls[0],
            [0, 1],
            "run inlines input_load_u64 and calls the host's alloc"
        );
        assert_eq!(
            calls[1],
            [0],
            "the injected function falls back on the import"
        );
    }
}
