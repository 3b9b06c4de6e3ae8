//! The shape of an upload: how much a component holds (functions, code, data and element
//! segments, types, imports, nested modules, …), counted by one parse-only pass before
//! anything is compiled, and checked against maxima.
//!
//! Compiling is what costs: wasmtime's time and memory grow with the number and size of the
//! functions, with the initialisers it compiles into each module's start-up function, and
//! with the modules and trampolines it builds. A 24 MB component of 740,000 tiny functions
//! took 112 s and 4.4 GB to compile; counting them takes milliseconds. So every count that
//! drives compile cost has a maximum, set well above what the real Python and JavaScript
//! toolchains produce (measured figures in ARCHITECTURE.md, "Upload limits";
//! `tests/tests/upload_limits.rs` keeps the margin), and an upload over one is refused by
//! name before it reaches the compiler.

mod count;

pub use count::measure;

/// Wasmtime's `memory_guaranteed_dense_image_size`, set explicitly on the engine so that
/// [`measure`] predicts the same thing wasmtime decides: which data segments become a
/// copy-on-write memory image (cheap, whatever their number) and which are compiled into
/// the module's start-up function (one call each, in one function whose compile time grows
/// faster than its length: 40,000 such segments took 87 s of CPU and 1.1 GB).
pub const DENSE_IMAGE_BYTES: u64 = 16 << 20;

/// Counts over a whole component: its own sections and those of every nested core module and
/// component, added up (compile cost is the sum), except the `largest_…`/`initial_…` ones,
/// which are maxima over modules. Used both for what an upload holds and, as
/// [`Shape::maxima`], for what an upload may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Shape {
    /// Functions defined in core modules.
    pub functions: u64,
    /// Bytes of all function bodies.
    pub code_bytes: u64,
    /// Bytes of the largest function body.
    pub largest_function_bytes: u64,
    /// Data segments.
    pub data_segments: u64,
    /// Bytes of all data segments' contents.
    pub data_bytes: u64,
    /// Initialisers compiled into start-up functions: active data segments that cannot become
    /// a memory image, globals whose initial value is not a plain constant, active element
    /// segments and the items of passive ones.
    pub startup_items: u64,
    /// Element segments.
    pub element_segments: u64,
    /// Items in all element segments.
    pub elements: u64,
    /// Core types (each member of a rec group), core and component type definitions.
    pub types: u64,
    /// Core and component imports.
    pub imports: u64,
    /// Core and component exports.
    pub exports: u64,
    /// Memories defined in core modules.
    pub memories: u64,
    /// The largest initial size of a memory, in bytes.
    pub initial_memory_bytes: u64,
    /// Tables defined in core modules.
    pub tables: u64,
    /// The largest initial size of a table, in elements.
    pub initial_table_elements: u64,
    /// Globals defined in core modules.
    pub globals: u64,
    /// Core modules (nested in the component at any depth).
    pub core_modules: u64,
    /// Nested components (the upload itself not counted).
    pub components: u64,
    /// Core and component instances.
    pub instances: u64,
    /// Canonical functions (`canon lift`/`lower`, resource intrinsics) and aliases: each is a
    /// trampoline or an index the compiler resolves.
    pub component_items: u64,
    /// Custom sections (names, producers, debug info, …).
    pub custom_sections: u64,
    /// Bytes of all custom sections.
    pub custom_bytes: u64,
}

impl Shape {
    /// The default maxima: at least 4x what the pinned componentize-py and componentize-js
    /// produce for the test fixtures (measured figures and each ratio in ARCHITECTURE.md),
    /// a generous floor where both keep a count small, and the pooling allocator's own caps
    /// for initial memory and table sizes (past them instantiation could never succeed).
    pub fn maxima() -> Shape {
        Shape {
            functions: 60_000,
            code_bytes: 40 << 20,
            largest_function_bytes: 2 << 20,
            data_segments: 40_000,
            data_bytes: 48 << 20,
            startup_items: 2_000,
            element_segments: 1_000,
            elements: 40_000,
            types: 10_000,
            imports: 10_000,
            exports: 20_000,
            memories: 8,
            initial_memory_bytes: 64 << 20,
            tables: 16,
            initial_table_elements: 100_000,
            globals: 10_000,
            core_modules: 64,
            components: 16,
            instances: 320,
            component_items: 10_000,
            custom_sections: 1_000,
            custom_bytes: 16 << 20,
        }
    }

    /// Every count with its name, in the order they are checked.
    pub fn entries(&self) -> [(&'static str, u64); 22] {
        [
            ("functions", self.functions),
            ("code_bytes", self.code_bytes),
            ("largest_function_bytes", self.largest_function_bytes),
            ("data_segments", self.data_segments),
            ("data_bytes", self.data_bytes),
            ("startup_items", self.startup_items),
            ("element_segments", self.element_segments),
            ("elements", self.elements),
            ("types", self.types),
            ("imports", self.imports),
            ("exports", self.exports),
            ("memories", self.memories),
            ("initial_memory_bytes", self.initial_memory_bytes),
            ("tables", self.tables),
            ("initial_table_elements", self.initial_table_elements),
            ("globals", self.globals),
            ("core_modules", self.core_modules),
            ("components", self.components),
            ("instances", self.instances),
            ("component_items", self.component_items),
            ("custom_sections", self.custom_sections),
            ("custom_bytes", self.custom_bytes),
        ]
    }

    /// What a count counts, for a person: "the component has {found} {noun}".
    pub fn noun(limit: &str) -> &'static str {
        match limit {
            "functions" => "functions",
            "code_bytes" => "bytes of function bodies",
            "largest_function_bytes" => "bytes in its largest function body",
            "data_segments" => "data segments",
            "data_bytes" => "bytes of data segments",
            "startup_items" => {
                "initialisers compiled into start-up code (sparse data segments, non-constant globals, element segments)"
            }
            "element_segments" => "element segments",
            "elements" => "elements in element segments",
            "types" => "types",
            "imports" => "imports",
            "exports" => "exports",
            "memories" => "memories",
            "initial_memory_bytes" => "bytes of initial size in one memory",
            "tables" => "tables",
            "initial_table_elements" => "elements of initial size in one table",
            "globals" => "globals",
            "core_modules" => "core modules",
            "components" => "nested components",
            "instances" => "instances",
            "component_items" => "canonical functions and aliases",
            "custom_sections" => "custom sections",
            "custom_bytes" => "bytes of custom sections",
            _ => "items",
        }
    }

    /// The first count over its maximum in `max`, as the refusal naming it.
    pub fn over(&self, max: &Shape) -> Option<crate::UploadError> {
        self.entries()
            .into_iter()
            .zip(max.entries())
            .find(|((_, found), (_, max))| found > max)
            .map(|((limit, found), (_, max))| crate::UploadError::OverLimit { limit, found, max })
    }
}
