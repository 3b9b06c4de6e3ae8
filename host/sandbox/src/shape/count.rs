//! The counting pass behind [`Shape`]: one walk over the component's sections with
//! wasmparser, reading section headers and only the small entries that decide compile cost
//! (data segment offsets, global initialisers, element kinds, function body sizes). No
//! validation and no compilation; it stops at the first count over its maximum.

use wasmparser::{
    BinaryReaderError, ConstExpr, DataKind, ElementItems, ElementKind, Encoding, MemoryType,
    Operator, Parser, Payload, TypeRef,
};

use super::{Shape, DENSE_IMAGE_BYTES};
use crate::UploadError;

/// Smallest page size wasmtime maps a memory image with (a memory with smaller pages is never
/// given an image).
const HOST_PAGE: u64 = 4096;

/// What one core module's active data segments look like, per defined memory, to predict
/// whether wasmtime turns them into a memory image (see `ModuleTranslation::try_static_init`
/// in wasmtime-environ: every segment must be a constant offset into a defined memory within
/// its initial size, and each memory's image must be dense or small).
#[derive(Default)]
struct Module {
    /// Imported memories come first in the index space.
    imported_memories: u32,
    /// Defined memories: initial bytes (None if it overflows) and page size.
    memories: Vec<(Option<u64>, u64)>,
    /// Per defined memory: (data bytes, lowest address, highest end).
    extents: Vec<(u64, u64, u64)>,
    active_segments: u64,
    /// A segment that rules out an image for the whole module.
    no_image: bool,
}

impl Module {
    fn segment(&mut self, memory: u32, offset: &ConstExpr<'_>, len: u64) {
        self.active_segments += 1;
        let Some(defined) = memory.checked_sub(self.imported_memories) else {
            self.no_image = true;
            return;
        };
        let (Some(start), Some(&(Some(size), page))) =
            (constant(offset), self.memories.get(defined as usize))
        else {
            self.no_image = true;
            return;
        };
        match start.checked_add(len) {
            Some(end) if end <= size && page >= HOST_PAGE => {
                if len > 0 {
                    let e = &mut self.extents[defined as usize];
                    *e = (e.0 + len, e.1.min(start), e.2.max(end));
                }
            }
            _ => self.no_image = true,
        }
    }

    /// Active data segments that will be compiled into the start-up function.
    fn startup_segments(&self) -> u64 {
        let sparse = self.extents.iter().any(|&(data, lo, hi)| {
            data > 0 && hi - lo >= data.saturating_mul(2) && hi - lo >= DENSE_IMAGE_BYTES
        });
        if self.no_image || sparse {
            self.active_segments
        } else {
            0
        }
    }
}

/// The value of a constant offset expression (`i32.const N` / `i64.const N`), if it is one.
fn constant(expr: &ConstExpr<'_>) -> Option<u64> {
    let mut ops = expr.get_operators_reader();
    let value = match ops.read().ok()? {
        Operator::I32Const { value } => u64::from(value.cast_unsigned()),
        Operator::I64Const { value } => value.cast_unsigned(),
        _ => return None,
    };
    matches!(ops.read().ok()?, Operator::End).then_some(value)
}

/// Whether a global's initialiser is a single plain constant (wasmtime evaluates those at
/// compile time; anything else goes into the start-up function).
fn plain(expr: &ConstExpr<'_>) -> bool {
    let mut ops = expr.get_operators_reader();
    let first = matches!(
        ops.read(),
        Ok(Operator::I32Const { .. }
            | Operator::I64Const { .. }
            | Operator::F32Const { .. }
            | Operator::F64Const { .. }
            | Operator::V128Const { .. }
            | Operator::RefNull { .. }
            | Operator::RefFunc { .. })
    );
    first && matches!(ops.read(), Ok(Operator::End))
}

fn memory_bytes(ty: &MemoryType) -> (Option<u64>, u64) {
    let page = 1u64 << ty.page_size_log2.unwrap_or(16).min(63);
    (ty.initial.checked_mul(page), page)
}

/// The core module being parsed, if the innermost thing being parsed is one.
fn current(stack: &mut [Option<Module>]) -> Option<&mut Module> {
    stack.last_mut().and_then(Option::as_mut)
}

/// Counts what `bytes` holds, refusing as soon as a count passes its maximum in `max` (so a
/// bomb is refused after reading its section headers, not after counting it all). Parses
/// only: an invalid binary is refused here if the parser trips on it, otherwise later by the
/// compiler's validation.
pub fn measure(bytes: &[u8], max: &Shape) -> Result<Shape, UploadError> {
    let invalid = |e: BinaryReaderError| UploadError::Invalid(e.to_string());
    let mut s = Shape::default();
    // One entry per module or component being parsed (`None` for a component).
    let mut stack: Vec<Option<Module>> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::Version { encoding, .. } => stack.push(match encoding {
                Encoding::Module => Some(Module::default()),
                Encoding::Component => None,
            }),
            Payload::End(_) => {
                if let Some(Some(m)) = stack.pop() {
                    s.startup_items += m.startup_segments();
                }
            }
            Payload::TypeSection(r) => {
                for group in r {
                    s.types += group.map_err(invalid)?.types().len() as u64;
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import.map_err(invalid)?;
                    s.imports += 1;
                    if let (TypeRef::Memory(_), Some(m)) = (import.ty, current(&mut stack)) {
                        m.imported_memories += 1;
                    }
                }
            }
            Payload::FunctionSection(r) => s.functions += u64::from(r.count()),
            Payload::TableSection(r) => {
                s.tables += u64::from(r.count());
                for table in r {
                    let initial = table.map_err(invalid)?.ty.initial;
                    s.initial_table_elements = s.initial_table_elements.max(initial);
                }
            }
            Payload::MemorySection(r) => {
                s.memories += u64::from(r.count());
                for memory in r {
                    let (size, page) = memory_bytes(&memory.map_err(invalid)?);
                    s.initial_memory_bytes = s.initial_memory_bytes.max(size.unwrap_or(u64::MAX));
                    if let Some(m) = current(&mut stack) {
                        m.memories.push((size, page));
                        m.extents.push((0, u64::MAX, 0));
                    }
                }
            }
            Payload::GlobalSection(r) => {
                s.globals += u64::from(r.count());
                if let Some(e) = s.over(max) {
                    return Err(e);
                }
                for global in r {
                    if !plain(&global.map_err(invalid)?.init_expr) {
                        s.startup_items += 1;
                    }
                }
            }
            Payload::ExportSection(r) => s.exports += u64::from(r.count()),
            Payload::ElementSection(r) => {
                s.element_segments += u64::from(r.count());
                if let Some(e) = s.over(max) {
                    return Err(e);
                }
                for element in r {
                    let element = element.map_err(invalid)?;
                    let items = match element.items {
                        ElementItems::Functions(f) => u64::from(f.count()),
                        ElementItems::Expressions(_, e) => u64::from(e.count()),
                    };
                    s.elements += items;
                    s.startup_items += match element.kind {
                        ElementKind::Passive => items,
                        ElementKind::Active { .. } => 1,
                        ElementKind::Declared => 0,
                    };
                }
            }
            Payload::DataCountSection { count, .. } => {
                // Announced before the code section: refuse a bomb before reading the code.
                let announced = Shape {
                    data_segments: s.data_segments + u64::from(count),
                    ..s
                };
                if let Some(e) = announced.over(max) {
                    return Err(e);
                }
            }
            Payload::DataSection(r) => {
                s.data_segments += u64::from(r.count());
                if let Some(e) = s.over(max) {
                    return Err(e);
                }
                for data in r {
                    let data = data.map_err(invalid)?;
                    let len = data.data.len() as u64;
                    s.data_bytes += len;
                    if let (
                        DataKind::Active {
                            memory_index,
                            offset_expr,
                        },
                        Some(m),
                    ) = (&data.kind, current(&mut stack))
                    {
                        m.segment(*memory_index, offset_expr, len);
                    }
                }
            }
            // The function section counted the bodies; this bounds their bytes before the
            // first one is looked at.
            Payload::CodeSectionStart { size, .. } => s.code_bytes += u64::from(size),
            Payload::CodeSectionEntry(body) => {
                let len = body.range().len() as u64;
                s.largest_function_bytes = s.largest_function_bytes.max(len);
            }
            Payload::ModuleSection { .. } => s.core_modules += 1,
            Payload::ComponentSection { .. } => s.components += 1,
            Payload::InstanceSection(r) => s.instances += u64::from(r.count()),
            Payload::ComponentInstanceSection(r) => s.instances += u64::from(r.count()),
            Payload::CoreTypeSection(r) => s.types += u64::from(r.count()),
            Payload::ComponentTypeSection(r) => s.types += u64::from(r.count()),
            Payload::ComponentAliasSection(r) => s.component_items += u64::from(r.count()),
            Payload::ComponentCanonicalSection(r) => s.component_items += u64::from(r.count()),
            Payload::ComponentImportSection(r) => s.imports += u64::from(r.count()),
            Payload::ComponentExportSection(r) => s.exports += u64::from(r.count()),
            Payload::CustomSection(c) => {
                s.custom_sections += 1;
                s.custom_bytes += c.data().len() as u64;
            }
            _ => {}
        }
        if let Some(e) = s.over(max) {
            return Err(e);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(module: &str) -> Shape {
        let text = format!("(component (core module {module}))");
        measure(&wat::parse_str(text).expect("wat"), &Shape::maxima()).expect("within limits")
    }

    #[test]
    fn counts_what_a_component_holds() {
        let s = shape(
            r#"(memory 1) (table 3 funcref) (global i32 (i32.const 1))
               (func) (func (nop) (nop)) (func (export "f"))
               (data (i32.const 0) "abc") (data "passive")
               (elem (i32.const 0) func 0 1) (elem func 2)"#,
        );
        assert_eq!(s.core_modules, 1);
        assert_eq!(s.functions, 3);
        assert_eq!(s.largest_function_bytes, 4, "locals, two nops, end");
        assert_eq!((s.data_segments, s.data_bytes), (2, 10));
        assert_eq!((s.element_segments, s.elements), (2, 3));
        assert_eq!(s.exports, 1);
        assert_eq!((s.memories, s.initial_memory_bytes), (1, 65536));
        assert_eq!((s.tables, s.initial_table_elements), (1, 3));
        assert_eq!(s.globals, 1);
        // The active element segment, and the passive one's single item.
        assert_eq!(s.startup_items, 2);
    }

    #[test]
    fn only_segments_wasmtime_cannot_image_count_as_startup_code() {
        // Dense, or small: one memory image.
        assert_eq!(
            shape(r#"(memory 1) (data (i32.const 0) "a") (data (i32.const 9) "b")"#).startup_items,
            0
        );
        assert_eq!(
            shape(r#"(memory 300) (data (i32.const 0) "a") (data (i32.const 16000000) "b")"#)
                .startup_items,
            0
        );
        // Sparse and large: every segment of the module is copied by start-up code.
        let sparse =
            shape(r#"(memory 300) (data (i32.const 0) "a") (data (i32.const 17000000) "b")"#);
        assert_eq!(sparse.startup_items, 2);
        // Offsets that are not constants, imported memories, segments past the initial size.
        assert_eq!(
            shape(r#"(global $g i32 (i32.const 0)) (memory 1) (data (global.get $g) "a")"#)
                .startup_items,
            1
        );
        assert_eq!(
            shape(r#"(import "m" "m" (memory 1)) (data (i32.const 0) "a")"#).startup_items,
            1
        );
        assert_eq!(
            shape(r#"(memory 1) (data (i32.const 65535) "ab")"#).startup_items,
            1
        );
    }

    #[test]
    fn the_first_count_over_its_maximum_is_named() {
        let max = Shape {
            functions: 2,
            ..Shape::maxima()
        };
        let bytes = wat::parse_str("(component (core module (func) (func) (func)))").expect("wat");
        match measure(&bytes, &max) {
            Err(UploadError::OverLimit {
                limit: "functions",
                found: 3,
                max: 2,
            }) => {}
            other => panic!("{other:?}"),
        }
        let e = measure(b"\0asm\x0d\0\x01\0\x01\x05", &max).expect_err("truncated");
        assert!(matches!(e, UploadError::Invalid(_)), "{e:?}");
    }
}
