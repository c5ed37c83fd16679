//! The few pieces of the WebAssembly binary format that packaging edits: sections, custom
//! sections (the `io.kubewarden.metadata` one) and data segments (the baked policies), active
//! or laid by the start function. A module is only ever copied with sections replaced or
//! added, never re-encoded, so everything else in it stays byte for byte as the toolchain
//! wrote it.

use std::ops::Range;

/// A file that is not a WebAssembly module, or a truncated one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotWasm(pub String);

fn not_wasm(message: impl Into<String>) -> NotWasm {
    NotWasm(message.into())
}

/// The section ids edited here.
const CUSTOM: u8 = 0;
const DATA: u8 = 11;
const DATA_COUNT: u8 = 12;
/// `i32.const` and `end`: an active segment's offset expression.
const I32_CONST: u8 = 0x41;
const END: u8 = 0x0b;

pub(crate) fn read_leb_u32(bytes: &[u8], at: &mut usize) -> Result<u32, NotWasm> {
    let mut result: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes
            .get(*at)
            .ok_or_else(|| not_wasm("truncated LEB128 number"))?;
        *at += 1;
        result |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(result);
        }
    }
    Err(not_wasm("LEB128 number too long"))
}

pub(crate) fn write_leb_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_sleb_i32(bytes: &[u8], at: &mut usize) -> Result<i32, NotWasm> {
    let mut result: i64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes
            .get(*at)
            .ok_or_else(|| not_wasm("truncated LEB128 number"))?;
        *at += 1;
        result |= i64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            if byte & 0x40 != 0 {
                result -= 1 << (shift + 7);
            }
            return i32::try_from(result).map_err(|_| not_wasm("i32 constant out of range"));
        }
    }
    Err(not_wasm("LEB128 number too long"))
}

fn write_sleb_i32(out: &mut Vec<u8>, mut value: i32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A section of a module: its id, the byte range of the whole section and of its content,
/// and for custom sections their name and payload range.
pub(crate) struct Section {
    pub(crate) id: u8,
    pub(crate) whole: Range<usize>,
    content: Range<usize>,
    pub(crate) custom: Option<(String, Range<usize>)>,
}

pub(crate) fn sections(module: &[u8]) -> Result<Vec<Section>, NotWasm> {
    if module.get(..8) != Some(b"\0asm\x01\0\0\0") {
        return Err(not_wasm(
            "it does not start with the WebAssembly header (\\0asm, version 1)",
        ));
    }
    let mut at = 8;
    let mut out = Vec::new();
    while at < module.len() {
        let start = at;
        let id = module.get(at).copied().unwrap_or_default();
        at += 1;
        let size = read_leb_u32(module, &mut at)? as usize;
        let content = at..at + size;
        if content.end > module.len() {
            return Err(not_wasm(format!(
                "section at byte {start} runs past the end of the file"
            )));
        }
        let custom = if id == CUSTOM {
            let mut name_at = content.start;
            let len = read_leb_u32(module, &mut name_at)? as usize;
            let name = module
                .get(name_at..name_at + len)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| not_wasm("bad custom section name"))?;
            Some((name.to_owned(), name_at + len..content.end))
        } else {
            None
        };
        at = content.end;
        out.push(Section {
            id,
            whole: start..at,
            content,
            custom,
        });
    }
    Ok(out)
}

/// The payload of the custom section `name`, if the module has one.
pub fn custom_section<'m>(module: &'m [u8], name: &str) -> Result<Option<&'m [u8]>, NotWasm> {
    Ok(sections(module)?
        .into_iter()
        .find_map(|s| s.custom.filter(|(n, _)| n == name))
        .and_then(|(_, range)| module.get(range)))
}

fn push_section(out: &mut Vec<u8>, id: u8, content: &[u8]) {
    out.push(id);
    write_leb_u32(out, u32::try_from(content.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(content);
}

/// The module with every custom section `name` replaced by one holding `payload`.
pub fn with_custom_section(module: &[u8], name: &str, payload: &[u8]) -> Result<Vec<u8>, NotWasm> {
    let mut out = Vec::with_capacity(module.len() + payload.len() + 64);
    out.extend_from_slice(module.get(..8).unwrap_or_default());
    for s in sections(module)? {
        if s.custom.as_ref().is_some_and(|(n, _)| n == name) {
            continue;
        }
        out.extend_from_slice(module.get(s.whole).unwrap_or_default());
    }
    let mut content = Vec::new();
    write_leb_u32(&mut content, u32::try_from(name.len()).unwrap_or(u32::MAX));
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    push_section(&mut out, CUSTOM, &content);
    Ok(out)
}

/// One data segment: its encoding in the data section, whether it is passive, and the address
/// memory holds it at after instantiation (an active segment's constant offset in memory 0,
/// or where the start function lays a passive one) with its bytes.
struct Segment {
    encoded: Range<usize>,
    passive: bool,
    placed: Option<(u32, Range<usize>)>,
}

/// Where the module's start function lays its passive data segments, by segment index: the
/// OPA-ABI module's data that lies past the pages OPA hosts create is passive, and its start
/// function grows memory and copies each segment (`memory.init`) to the address the linker
/// gave it. Read from the start function's code, which is the truth whatever custom sections
/// a tool kept: a run of constants, memory.size, arithmetic, branches and calls, and
/// `memory.init` with constant operands; reading stops at anything else.
fn laid_at(module: &[u8], all: &[Section]) -> Result<Vec<(u32, u32)>, NotWasm> {
    const IMPORT: u8 = 2;
    const START: u8 = 8;
    const CODE: u8 = 10;
    let content = |id: u8| {
        all.iter()
            .find(|s| s.id == id)
            .and_then(|s| module.get(s.content.clone()))
    };
    let Some(start) = content(START) else {
        return Ok(Vec::new());
    };
    let function = read_leb_u32(start, &mut 0)?;
    let imported = match content(IMPORT) {
        Some(imports) => imported_functions(imports)?,
        None => 0,
    };
    let Some(defined) = function.checked_sub(imported) else {
        return Ok(Vec::new());
    };
    let code = content(CODE).ok_or_else(|| not_wasm("the module has no code section"))?;
    let mut at = 0;
    let bodies = read_leb_u32(code, &mut at)?;
    if defined >= bodies {
        return Err(not_wasm("the start function has no body"));
    }
    for _ in 0..defined {
        let len = read_leb_u32(code, &mut at)? as usize;
        at += len;
    }
    let len = read_leb_u32(code, &mut at)? as usize;
    let body = code
        .get(at..at + len)
        .ok_or_else(|| not_wasm("the start function runs past its section"))?;
    let mut at = 0;
    if read_leb_u32(body, &mut at)? != 0 {
        // Locals: not a start function that only lays data.
        return Ok(Vec::new());
    }
    let mut constants: Vec<i32> = Vec::new();
    let mut laid = Vec::new();
    while let Some(&op) = body.get(at) {
        at += 1;
        match op {
            I32_CONST => constants.push(read_sleb_i32(body, &mut at)?),
            // block/if with an empty type, memory.size/grow (memory 0)
            0x02 | 0x04 | 0x3f | 0x40 => at += 1,
            // br_if, call: one index
            0x0d | 0x10 => {
                read_leb_u32(body, &mut at)?;
            }
            // unreachable, end, i32.eq, i32.ge_u, i32.sub
            0x00 | END | 0x46 | 0x4f | 0x6b => {}
            0xfc => match read_leb_u32(body, &mut at)? {
                8 => {
                    let segment = read_leb_u32(body, &mut at)?;
                    at += 1;
                    if let [.., address, 0, _len] = constants.as_slice() {
                        laid.push((segment, address.cast_unsigned()));
                    }
                }
                9 => {
                    read_leb_u32(body, &mut at)?;
                }
                _ => break,
            },
            _ => break,
        }
    }
    Ok(laid)
}

/// How many functions the import section (its content) imports: they come first in the
/// function index space.
fn imported_functions(imports: &[u8]) -> Result<u32, NotWasm> {
    let mut at = 0;
    let mut functions = 0;
    for _ in 0..read_leb_u32(imports, &mut at)? {
        // module and field names
        for _ in 0..2 {
            let len = read_leb_u32(imports, &mut at)? as usize;
            at += len;
        }
        let kind = *imports
            .get(at)
            .ok_or_else(|| not_wasm("truncated import"))?;
        at += 1;
        match kind {
            0 => {
                read_leb_u32(imports, &mut at)?;
                functions += 1;
            }
            // table (reference type, then limits) or memory (limits)
            1 | 2 => {
                at += usize::from(kind == 1);
                let flags = read_leb_u32(imports, &mut at)?;
                read_leb_u32(imports, &mut at)?;
                if flags & 1 != 0 {
                    read_leb_u32(imports, &mut at)?;
                }
            }
            // global: type, mutability
            3 => at += 2,
            // tag: attribute, type index
            4 => {
                at += 1;
                read_leb_u32(imports, &mut at)?;
            }
            other => return Err(not_wasm(format!("import kind {other}"))),
        }
    }
    Ok(functions)
}

/// The data section's segments (within `section`, the data section's content range).
fn segments(
    module: &[u8],
    all: &[Section],
    section: Range<usize>,
) -> Result<Vec<Segment>, NotWasm> {
    // A start function this reader does not follow lays nothing it can see: its segments
    // are then at no known address (and a baked buffer in one is not found), never misplaced.
    let laid = laid_at(module, all).unwrap_or_default();
    let bytes = module.get(section.clone()).unwrap_or_default();
    let mut at = 0;
    let count = read_leb_u32(bytes, &mut at)?;
    let mut out = Vec::new();
    for index in 0..u64::from(count) {
        let start = at;
        let flags = read_leb_u32(bytes, &mut at)?;
        let offset = match flags {
            0 | 2 => {
                if flags == 2 {
                    let memory = read_leb_u32(bytes, &mut at)?;
                    if memory != 0 {
                        return Err(not_wasm("a data segment for a memory other than 0"));
                    }
                }
                let constant = bytes.get(at) == Some(&I32_CONST);
                if !constant {
                    return Err(not_wasm(
                        "a data segment whose offset is not an i32 constant",
                    ));
                }
                at += 1;
                let offset = read_sleb_i32(bytes, &mut at)?;
                if bytes.get(at) != Some(&END) {
                    return Err(not_wasm(
                        "a data segment whose offset is not an i32 constant",
                    ));
                }
                at += 1;
                Some(offset.cast_unsigned())
            }
            // Passive: where the start function lays it, if it does.
            1 => laid
                .iter()
                .find(|(segment, _)| u64::from(*segment) == index)
                .map(|(_, address)| *address),
            other => return Err(not_wasm(format!("data segment kind {other}"))),
        };
        let len = read_leb_u32(bytes, &mut at)? as usize;
        let data = at..at + len;
        if data.end > bytes.len() {
            return Err(not_wasm("a data segment runs past its section"));
        }
        at = data.end;
        let base = section.start;
        out.push(Segment {
            encoded: base + start..base + at,
            passive: flags == 1,
            placed: offset.map(|o| (o, base + data.start..base + data.end)),
        });
    }
    Ok(out)
}

/// Where the module's data segments put `address` in memory once instantiated: the file range
/// from it to the end of the segment that covers it.
fn covering(module: &[u8], address: u32) -> Result<Option<Range<usize>>, NotWasm> {
    let all = sections(module)?;
    let Some(data) = all.iter().find(|s| s.id == DATA) else {
        return Ok(None);
    };
    // The last one that covers it, when several do: active segments are written in order at
    // instantiation and passive ones after them, by the start function, so the last one's
    // bytes are what memory holds.
    let mut laid = segments(module, &all, data.content.clone())?;
    laid.sort_by_key(|s| s.passive);
    Ok(laid.into_iter().rev().find_map(|s| {
        let (at, range) = s.placed?;
        let skip = usize::try_from(address.checked_sub(at)?).ok()?;
        (skip < range.len()).then(|| range.start + skip..range.end)
    }))
}

/// What the module's data segments write from `address` to the end of the segment that
/// covers it, if one does.
pub fn data_at(module: &[u8], address: u32) -> Result<Option<&[u8]>, NotWasm> {
    Ok(covering(module, address)?.and_then(|range| module.get(range)))
}

/// The module with `bytes` written at `address`: in place when one of its data segments
/// covers them all (the module's structure is unchanged), else as an active data segment of
/// its own (see [`with_data_segment`]).
pub fn with_data_at(module: &[u8], address: u32, bytes: &[u8]) -> Result<Vec<u8>, NotWasm> {
    match covering(module, address)? {
        Some(range) if range.len() >= bytes.len() => {
            let mut out = module.to_vec();
            if let Some(slot) = out.get_mut(range.start..range.start + bytes.len()) {
                slot.copy_from_slice(bytes);
            }
            Ok(out)
        }
        _ => with_data_segment(module, address, bytes),
    }
}

/// The module with an active data segment writing `bytes` at `address` (replacing one that
/// writes there already), and its data count updated when it has one.
pub fn with_data_segment(module: &[u8], address: u32, bytes: &[u8]) -> Result<Vec<u8>, NotWasm> {
    let all = sections(module)?;
    let data = all
        .iter()
        .find(|s| s.id == DATA)
        .ok_or_else(|| not_wasm("the module has no data section"))?;
    let all_segments = segments(module, &all, data.content.clone())?;
    // A module whose start function lays its data (the OPA-ABI module) may be given only the
    // pages below that data, and an active segment is written before the start function runs:
    // its bytes go into the segments it lays, in place (see `with_data_at`).
    if all_segments.iter().any(|s| s.passive) {
        return Err(not_wasm(format!(
            "the module lays its data from its start function, and none of that data covers {} bytes at {address}",
            bytes.len()
        )));
    }
    let kept: Vec<Segment> = all_segments
        .into_iter()
        .filter(|s| s.placed.as_ref().is_none_or(|(at, _)| *at != address))
        .collect();
    let count = u32::try_from(kept.len() + 1).unwrap_or(u32::MAX);
    let mut content = Vec::with_capacity(data.content.len() + bytes.len() + 16);
    write_leb_u32(&mut content, count);
    for segment in &kept {
        content.extend_from_slice(module.get(segment.encoded.clone()).unwrap_or_default());
    }
    content.extend_from_slice(&[0, I32_CONST]);
    write_sleb_i32(&mut content, address.cast_signed());
    content.push(END);
    write_leb_u32(&mut content, u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    content.extend_from_slice(bytes);
    let mut out = Vec::with_capacity(module.len() + bytes.len() + 16);
    out.extend_from_slice(module.get(..8).unwrap_or_default());
    for s in &all {
        match s.id {
            DATA => push_section(&mut out, DATA, &content),
            DATA_COUNT => {
                let mut count_content = Vec::new();
                write_leb_u32(&mut count_content, count);
                push_section(&mut out, DATA_COUNT, &count_content);
            }
            _ => out.extend_from_slice(module.get(s.whole.clone()).unwrap_or_default()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with one memory and a data section of one segment writing "hi" at 16, with
    /// a data count section (as `wasm-opt` writes for bulk memory).
    fn module() -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        push_section(&mut m, 5, &[1, 0, 1]);
        push_section(&mut m, DATA_COUNT, &[1]);
        push_section(&mut m, DATA, &[1, 0, I32_CONST, 16, END, 2, b'h', b'i']);
        m
    }

    #[test]
    fn custom_sections_are_replaced_not_duplicated() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let once = with_custom_section(&module, "x", b"1").unwrap();
        let twice = with_custom_section(&once, "x", b"22").unwrap();
        assert_eq!(custom_section(&twice, "x").unwrap(), Some(&b"22"[..]));
        assert_eq!(sections(&twice).unwrap().len(), 1);
        assert!(custom_section(b"garbage!", "x").is_err());
    }

    #[test]
    fn a_data_segment_is_added_then_replaced_and_the_count_follows() {
        let m = module();
        assert_eq!(data_at(&m, 16).unwrap(), Some(&b"hi"[..]));
        assert_eq!(data_at(&m, 17).unwrap(), Some(&b"i"[..]));
        assert_eq!(data_at(&m, 18).unwrap(), None);
        assert_eq!(data_at(&m, 1_094_688).unwrap(), None);
        let added = with_data_at(&m, 1_094_688, b"baked").unwrap();
        assert_eq!(data_at(&added, 16).unwrap(), Some(&b"hi"[..]));
        assert_eq!(data_at(&added, 1_094_688).unwrap(), Some(&b"baked"[..]));
        let count = |m: &[u8]| {
            let s = sections(m).unwrap();
            let dc = s.iter().find(|s| s.id == DATA_COUNT).unwrap();
            m[dc.content.start]
        };
        assert_eq!(count(&added), 2);
        let longer = with_data_at(&added, 1_094_688, b"baked again").unwrap();
        assert_eq!(
            data_at(&longer, 1_094_688).unwrap(),
            Some(&b"baked again"[..])
        );
        assert_eq!(count(&longer), 2);
        assert_eq!(longer.len(), added.len() + 6);
    }

    #[test]
    fn bytes_a_segment_covers_are_written_in_place() {
        let m = module();
        let patched = with_data_at(&m, 17, b"o").unwrap();
        assert_eq!(patched.len(), m.len());
        assert_eq!(data_at(&patched, 16).unwrap(), Some(&b"ho"[..]));
        // Past the segment's end: a segment of its own.
        let grown = with_data_at(&m, 17, b"ow").unwrap();
        assert_eq!(data_at(&grown, 16).unwrap(), Some(&b"hi"[..]));
        assert_eq!(data_at(&grown, 17).unwrap(), Some(&b"ow"[..]));
    }

    #[test]
    fn a_passive_segment_is_where_the_start_function_lays_it() {
        // One function, the start: memory.init 0 at 70,000 (2 bytes); data.drop 0; end.
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        push_section(&mut m, 1, &[1, 0x60, 0, 0]);
        push_section(&mut m, 3, &[1, 0]);
        push_section(&mut m, 5, &[1, 0, 2]);
        push_section(&mut m, 8, &[0]);
        push_section(&mut m, DATA_COUNT, &[2]);
        let mut body = vec![0, I32_CONST];
        write_sleb_i32(&mut body, 70_000);
        body.extend_from_slice(&[I32_CONST, 0, I32_CONST, 2, 0xfc, 8, 1, 0, 0xfc, 9, 1, END]);
        let mut code = vec![1];
        write_leb_u32(&mut code, u32::try_from(body.len()).unwrap());
        code.extend_from_slice(&body);
        push_section(&mut m, 10, &code);
        push_section(
            &mut m,
            DATA,
            &[2, 0, I32_CONST, 16, END, 1, b'a', 1, 2, b'h', b'i'],
        );
        assert_eq!(data_at(&m, 16).unwrap(), Some(&b"a"[..]));
        assert_eq!(data_at(&m, 70_000).unwrap(), Some(&b"hi"[..]));
        let patched = with_data_at(&m, 70_001, b"o").unwrap();
        assert_eq!(patched.len(), m.len());
        assert_eq!(data_at(&patched, 70_000).unwrap(), Some(&b"ho"[..]));
        // Bytes the laid data does not cover would need an active segment, written before
        // the start function grows memory: refused.
        assert!(with_data_at(&m, 16, b"bb").is_err());
        assert!(with_data_at(&m, 70_001, b"long").is_err());
    }

    #[test]
    fn leb128_round_trips() {
        for v in [0, 1, 127, 128, 300, 65_536, u32::MAX] {
            let mut out = Vec::new();
            write_leb_u32(&mut out, v);
            let mut at = 0;
            assert_eq!(read_leb_u32(&out, &mut at).unwrap(), v);
            assert_eq!(at, out.len());
        }
        for v in [0, 1, 63, 64, -1, -64, -65, 1_094_688, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            write_sleb_i32(&mut out, v);
            let mut at = 0;
            assert_eq!(read_sleb_i32(&out, &mut at).unwrap(), v, "{v}");
            assert_eq!(at, out.len());
        }
    }
}
