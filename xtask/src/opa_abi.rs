//! Adds the OPA ABI version globals to the linked OPA-ABI module.
//!
//! OPA hosts read the ABI version from two exported, immutable `i32` globals,
//! `opa_wasm_abi_version` and `opa_wasm_abi_minor_version`. Rust cannot define an exported
//! Wasm global (a `static` exports its address), so this step appends them to the global
//! section and exports them, leaving every other byte of the module as linked. A small
//! section-level edit instead of a Wasm rewriting crate: xtask keeps no dependencies.

/// The ABI version the module implements.
pub const ABI_VERSION: (i32, i32) = (1, 3);

const SECTION_IMPORT: u8 = 2;
const SECTION_GLOBAL: u8 = 6;
const SECTION_EXPORT: u8 = 7;
const KIND_GLOBAL: u8 = 3;

fn uleb(mut value: u64, out: &mut Vec<u8>) {
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

fn sleb(mut value: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return;
        }
    }
}

/// A reader over a byte slice, failing with a message instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or("the module ends in the middle of a section")?;
        self.at += 1;
        Ok(b)
    }

    fn uleb(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a LEB128 number is too long".to_owned())
    }

    fn sleb(&mut self) -> Result<i64, String> {
        let mut value = 0i64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= i64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if shift < 57 && b & 0x40 != 0 {
                    value |= -1i64 << (shift + 7);
                }
                return Ok(value);
            }
        }
        Err("a LEB128 number is too long".to_owned())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or("size overflow")?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or("the module ends in the middle of a section")?;
        self.at = end;
        Ok(slice)
    }

    fn name(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.uleb()?).map_err(|e| e.to_string())?;
        self.take(n)
    }
}

/// A vector section's body with `count` more entries (`extra`) appended.
fn append_entries(body: &[u8], count: u64, extra: &[u8]) -> Result<(Vec<u8>, u64), String> {
    let mut r = Reader { bytes: body, at: 0 };
    let existing = if body.is_empty() { 0 } else { r.uleb()? };
    let mut out = Vec::new();
    uleb(existing + count, &mut out);
    out.extend_from_slice(body.get(r.at..).unwrap_or_default());
    out.extend_from_slice(extra);
    Ok((out, existing))
}

fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    uleb(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// A module's sections, as (id, body), in order.
type Sections<'m> = Vec<(u8, &'m [u8])>;

/// The module's header and its sections.
fn read_sections(module: &[u8]) -> Result<(&[u8], Sections<'_>), String> {
    let header = module.get(..8).ok_or("not a Wasm module")?;
    if header.get(..4) != Some(b"\0asm".as_slice()) {
        return Err("not a Wasm module".to_owned());
    }
    let mut r = Reader {
        bytes: module,
        at: 8,
    };
    let mut sections: Sections<'_> = Vec::new();
    while r.at < module.len() {
        let id = r.byte()?;
        let len = usize::try_from(r.uleb()?).map_err(|e| e.to_string())?;
        sections.push((id, r.take(len)?));
    }
    Ok((header, sections))
}

/// The module with the two ABI version globals defined and exported.
pub fn add_version_globals(module: &[u8]) -> Result<Vec<u8>, String> {
    let (header, sections) = read_sections(module)?;
    let imported = match sections.iter().find(|(id, _)| *id == SECTION_IMPORT) {
        Some((_, body)) => imports(body)?.globals,
        None => 0,
    };
    let globals = [
        ("opa_wasm_abi_version", ABI_VERSION.0),
        ("opa_wasm_abi_minor_version", ABI_VERSION.1),
    ];
    let mut new_globals = Vec::new();
    for (_, value) in globals {
        // i32, immutable, init `i32.const value; end`.
        new_globals.extend_from_slice(&[0x7f, 0x00, 0x41]);
        sleb(i64::from(value), &mut new_globals);
        new_globals.push(0x0b);
    }
    if !sections.iter().any(|(id, _)| *id == SECTION_GLOBAL) {
        return Err("the module has no global section (wasm-ld always writes one)".to_owned());
    }
    let mut out = header.to_vec();
    let mut first_new = 0;
    for (id, body) in &sections {
        match *id {
            SECTION_GLOBAL => {
                let (body, existing) = append_entries(body, 2, &new_globals)?;
                first_new = imported + existing;
                section(SECTION_GLOBAL, &body, &mut out);
            }
            SECTION_EXPORT => {
                let mut extra = Vec::new();
                for (i, (name, _)) in globals.iter().enumerate() {
                    if body.windows(name.len()).any(|w| w == name.as_bytes()) {
                        return Err(format!("the module already exports {name}"));
                    }
                    uleb(name.len() as u64, &mut extra);
                    extra.extend_from_slice(name.as_bytes());
                    extra.push(KIND_GLOBAL);
                    uleb(first_new + i as u64, &mut extra);
                }
                let (body, _) = append_entries(body, 2, &extra)?;
                section(SECTION_EXPORT, &body, &mut out);
            }
            _ => section(*id, body, &mut out),
        }
    }
    Ok(out)
}

/// The pages the OPA-ABI module's memory import asks for: the 128 KiB stack's (wasm-ld puts
/// the stack first), the least a module can ask for and run. The host creates the memory before
/// it instantiates the module, and an import that asks for more than the host created fails to
/// link: `@open-policy-agent/opa-wasm` and burrego create 5 pages unless told otherwise, other
/// hosts what they are configured with.
pub const IMPORTED_PAGES: u64 = 2;

const SECTION_TYPE: u8 = 1;
const SECTION_FUNCTION: u8 = 3;
const SECTION_START: u8 = 8;
const SECTION_CODE: u8 = 10;
const SECTION_DATA: u8 = 11;
const SECTION_DATA_COUNT: u8 = 12;
const KIND_FUNCTION: u8 = 0;
const KIND_MEMORY: u8 = 2;
const PAGE: u64 = 65_536;

/// Where a known section goes, as the format orders them: the tag section (13, exception
/// handling) between memory and global, the data count (12) before the code.
fn order(id: u8) -> u8 {
    match id {
        1..=5 => id,
        13 => 6,
        6..=9 => id + 1,
        SECTION_DATA_COUNT => 11,
        SECTION_CODE => 12,
        SECTION_DATA => 13,
        _ => u8::MAX,
    }
}

/// The memory import's limits, with where they are in the import section's body.
struct MemoryImport {
    limits: std::ops::Range<usize>,
    min: u64,
    max: Option<u64>,
}

/// What the import section imports: the memory, if any, and how many functions and globals.
struct Imports {
    memory: Option<MemoryImport>,
    functions: u64,
    globals: u64,
}

fn imports(body: &[u8]) -> Result<Imports, String> {
    let mut r = Reader { bytes: body, at: 0 };
    let mut memory = None;
    let mut functions = 0;
    let mut globals = 0;
    for _ in 0..r.uleb()? {
        r.name()?;
        r.name()?;
        match r.byte()? {
            KIND_FUNCTION => {
                r.uleb()?;
                functions += 1;
            }
            1 => {
                r.byte()?;
                let flags = r.byte()?;
                r.uleb()?;
                if flags & 1 != 0 {
                    r.uleb()?;
                }
            }
            KIND_MEMORY => {
                let start = r.at;
                let flags = r.byte()?;
                if flags & !1 != 0 {
                    return Err(format!("a shared or 64-bit memory import (flags {flags})"));
                }
                let min = r.uleb()?;
                let max = if flags & 1 != 0 {
                    Some(r.uleb()?)
                } else {
                    None
                };
                memory = Some(MemoryImport {
                    limits: start..r.at,
                    min,
                    max,
                });
            }
            KIND_GLOBAL => {
                r.byte()?;
                r.byte()?;
                globals += 1;
            }
            other => return Err(format!("unknown import kind {other}")),
        }
    }
    Ok(Imports {
        memory,
        functions,
        globals,
    })
}

/// A data segment made passive: its index, the address the linker gave it, its length.
struct Passive {
    index: u64,
    address: u32,
    len: u32,
}

/// The data section with every segment that does not end within `limit` bytes made passive.
fn passive_past(body: &[u8], limit: u64) -> Result<(Vec<u8>, Vec<Passive>), String> {
    let mut r = Reader { bytes: body, at: 0 };
    let count = r.uleb()?;
    let mut out = Vec::with_capacity(body.len());
    uleb(count, &mut out);
    let mut passive = Vec::new();
    // The ranges the segments left active write.
    let mut active = Vec::new();
    for index in 0..count {
        let not_constant = || "a data segment whose offset is not an i32 constant".to_owned();
        if r.uleb()? != 0 {
            return Err(
                "a data segment that is not active in memory 0 (wasm-ld writes none)".to_owned(),
            );
        }
        if r.byte()? != 0x41 {
            return Err(not_constant());
        }
        let offset = i32::try_from(r.sleb()?).map_err(|_| not_constant())?;
        if r.byte()? != 0x0b {
            return Err(not_constant());
        }
        let len = u32::try_from(r.uleb()?).map_err(|e| e.to_string())?;
        let bytes = r.take(len as usize)?;
        let address = offset.cast_unsigned();
        if u64::from(address) + u64::from(len) <= limit {
            active.push(u64::from(address)..u64::from(address) + u64::from(len));
            out.extend_from_slice(&[0, 0x41]);
            sleb(i64::from(offset), &mut out);
            out.push(0x0b);
        } else {
            out.push(1);
            passive.push(Passive {
                index,
                address,
                len,
            });
        }
        uleb(u64::from(len), &mut out);
        out.extend_from_slice(bytes);
    }
    // Passive segments are laid after every active one (and in their own order): where one
    // overlaps an active segment, memory would hold other bytes than the linker meant
    // (wasm-ld writes no overlapping segments).
    let overlaps = passive.iter().any(|p| {
        let laid = u64::from(p.address)..u64::from(p.address) + u64::from(p.len);
        active
            .iter()
            .any(|a: &std::ops::Range<u64>| a.start < laid.end && laid.start < a.end)
    });
    if overlaps {
        return Err("data segments overlap: their order could not be kept".to_owned());
    }
    Ok((out, passive))
}

/// The start function's body: grow memory to `pages` (a trap if the host refuses), lay each
/// passive segment at its address and drop it, then call the linked start function, if any.
fn start_body(pages: u64, passive: &[Passive], then: Option<u64>) -> Vec<u8> {
    let pages = i64::try_from(pages).unwrap_or(i64::MAX);
    let mut code = vec![0x00]; // no locals
    // block; br_if 0 (memory.size >= pages)
    code.extend_from_slice(&[0x02, 0x40, 0x3f, 0x00, 0x41]);
    sleb(pages, &mut code);
    code.extend_from_slice(&[0x4f, 0x0d, 0x00]);
    // memory.grow(pages - memory.size) == -1 → unreachable; end
    code.push(0x41);
    sleb(pages, &mut code);
    code.extend_from_slice(&[
        0x3f, 0x00, 0x6b, 0x40, 0x00, 0x41, 0x7f, 0x46, 0x04, 0x40, 0x00, 0x0b, 0x0b,
    ]);
    for segment in passive {
        // memory.init segment (address, 0, len); data.drop segment
        code.push(0x41);
        sleb(i64::from(segment.address.cast_signed()), &mut code);
        code.extend_from_slice(&[0x41, 0x00, 0x41]);
        sleb(i64::from(segment.len.cast_signed()), &mut code);
        code.extend_from_slice(&[0xfc, 0x08]);
        uleb(segment.index, &mut code);
        code.extend_from_slice(&[0x00, 0xfc, 0x09]);
        uleb(segment.index, &mut code);
    }
    if let Some(f) = then {
        code.push(0x10);
        uleb(f, &mut code);
    }
    code.push(0x0b);
    let mut body = Vec::new();
    uleb(code.len() as u64, &mut body);
    body.extend_from_slice(&code);
    body
}

/// The index of the type `[] -> []` in the type section's body, appending it if absent.
fn void_type(body: &[u8]) -> Result<(Vec<u8>, u64), String> {
    let mut r = Reader { bytes: body, at: 0 };
    let count = r.uleb()?;
    for index in 0..count {
        if r.byte()? != 0x60 {
            return Err("a type that is not a function type".to_owned());
        }
        let params = r.uleb()?;
        r.take(usize::try_from(params).map_err(|e| e.to_string())?)?;
        let results = r.uleb()?;
        r.take(usize::try_from(results).map_err(|e| e.to_string())?)?;
        if params == 0 && results == 0 {
            return Ok((body.to_vec(), index));
        }
    }
    let (body, existing) = append_entries(body, 1, &[0x60, 0, 0])?;
    Ok((body, existing))
}

/// The module fitted to the memory OPA hosts create: when the linker asked for more than
/// [`IMPORTED_PAGES`] (it asks for 10: the query engine's Unicode tables are most of the
/// data), the memory import asks for [`IMPORTED_PAGES`], the data segments that do not end
/// within them become passive, and a start function, which runs at instantiation before any
/// export, grows memory to what the linker asked for and lays them where the linker put them.
/// Memory then holds what it would have held had the host created that many pages; a module
/// that asks for no more is returned as it is.
pub fn fit_host_memory(module: &[u8]) -> Result<Vec<u8>, String> {
    let (header, sections) = read_sections(module)?;
    let body = |id: u8| sections.iter().find(|(i, _)| *i == id).map(|(_, b)| *b);
    let import = body(SECTION_IMPORT).ok_or("the module imports nothing")?;
    let Imports {
        memory,
        functions: imported_functions,
        ..
    } = imports(import)?;
    let memory = memory.ok_or("the module does not import its memory")?;
    if memory.min <= IMPORTED_PAGES {
        return Ok(module.to_vec());
    }
    let data = body(SECTION_DATA).ok_or("the module has no data section")?;
    let (data, passive) = passive_past(data, IMPORTED_PAGES * PAGE)?;
    let (types, void) = void_type(body(SECTION_TYPE).unwrap_or_default())?;
    let (functions, defined) = append_entries(body(SECTION_FUNCTION).unwrap_or_default(), 1, &{
        let mut e = Vec::new();
        uleb(void, &mut e);
        e
    })?;
    let start = imported_functions + defined;
    let linked_start = match body(SECTION_START) {
        Some(b) => Some(Reader { bytes: b, at: 0 }.uleb()?),
        None => None,
    };
    let code = append_entries(
        body(SECTION_CODE).ok_or("the module has no code section")?,
        1,
        &start_body(memory.min, &passive, linked_start),
    )?
    .0;
    let data_segments = Reader {
        bytes: &data,
        at: 0,
    }
    .uleb()?;
    let mut limits = Vec::new();
    limits.push(u8::from(memory.max.is_some()));
    uleb(IMPORTED_PAGES, &mut limits);
    if let Some(max) = memory.max {
        uleb(max, &mut limits);
    }
    let mut import = import.to_vec();
    import.splice(memory.limits, limits);

    let mut out_sections: Vec<(u8, Vec<u8>)> = Vec::new();
    for (id, b) in &sections {
        let replaced = match *id {
            SECTION_IMPORT => import.clone(),
            SECTION_TYPE => types.clone(),
            SECTION_FUNCTION => functions.clone(),
            SECTION_CODE => code.clone(),
            SECTION_DATA => data.clone(),
            SECTION_START | SECTION_DATA_COUNT => continue,
            _ => b.to_vec(),
        };
        out_sections.push((*id, replaced));
    }
    let mut start_index = Vec::new();
    uleb(start, &mut start_index);
    let mut count = Vec::new();
    uleb(data_segments, &mut count);
    for (id, b) in [(SECTION_START, start_index), (SECTION_DATA_COUNT, count)] {
        let at = out_sections
            .iter()
            .position(|(i, _)| *i != 0 && order(*i) > order(id))
            .unwrap_or(out_sections.len());
        out_sections.insert(at, (id, b));
    }
    if !out_sections.iter().any(|(id, _)| *id == SECTION_FUNCTION) {
        return Err("the module defines no function".to_owned());
    }
    let mut out = header.to_vec();
    for (id, b) in &out_sections {
        section(*id, b, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(min_pages: u8) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        // type 0: [i32] -> [] (so [] -> [] is appended)
        section(SECTION_TYPE, &[1, 0x60, 1, 0x7f, 0], &mut m);
        // env.memory, min `min_pages`, no maximum
        let mut import = vec![1, 3];
        import.extend_from_slice(b"env");
        import.push(6);
        import.extend_from_slice(b"memory");
        import.extend_from_slice(&[KIND_MEMORY, 0, min_pages]);
        section(SECTION_IMPORT, &import, &mut m);
        section(SECTION_FUNCTION, &[1, 0], &mut m);
        section(SECTION_GLOBAL, &[0], &mut m);
        section(SECTION_CODE, &[1, 2, 0, 0x0b], &mut m);
        // "hi" at 16; "far" at 6 pages, past what hosts create
        let mut data = vec![2, 0, 0x41, 16, 0x0b, 2, b'h', b'i', 0, 0x41];
        sleb(6 * 65_536, &mut data);
        data.extend_from_slice(&[0x0b, 3, b'f', b'a', b'r']);
        section(SECTION_DATA, &data, &mut m);
        section(0, b"\x04name", &mut m);
        m
    }

    fn body(m: &[u8], id: u8) -> Vec<u8> {
        let (_, sections) = read_sections(m).unwrap();
        sections
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| b.to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn sections_are_ordered_as_the_format_orders_them() {
        // type, import, function, table, memory, tag, global, export, start, element,
        // data count, code, data
        let format = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
        let mut sorted = format;
        sorted.sort_by_key(|id| order(*id));
        assert_eq!(sorted, format);
    }

    #[test]
    fn overlapping_segments_are_refused_rather_than_reordered() {
        // "ab" ends within the 2 pages kept (stays active); the 200 bytes from 131,001 cross
        // the limit (would be passive, so laid after "ab", which they overlap).
        let mut data = vec![2, 0, 0x41];
        sleb(131_000, &mut data);
        data.extend_from_slice(&[0x0b, 2, b'a', b'b', 0, 0x41]);
        sleb(131_001, &mut data);
        data.push(0x0b);
        uleb(200, &mut data);
        data.extend_from_slice(&[7; 200]);
        assert!(passive_past(&data, IMPORTED_PAGES * PAGE).is_err());
    }

    #[test]
    fn a_module_that_fits_is_left_as_it_is() {
        let m = module(2);
        assert_eq!(fit_host_memory(&m).unwrap(), m);
    }

    #[test]
    fn data_past_the_host_pages_is_laid_by_a_start_function() {
        let fitted = fit_host_memory(&module(7)).unwrap();
        let imported = imports(&body(&fitted, SECTION_IMPORT)).unwrap();
        let memory = imported.memory.unwrap();
        assert_eq!(
            (memory.min, memory.max, imported.functions, imported.globals),
            (IMPORTED_PAGES, None, 0, 0)
        );
        // The near segment stays active; the far one is passive, with the same bytes.
        let data = body(&fitted, SECTION_DATA);
        assert_eq!(&data[..9], &[2, 0, 0x41, 16, 0x0b, 2, b'h', b'i', 1]);
        assert_eq!(&data[9..], &[3, b'f', b'a', b'r']);
        assert_eq!(body(&fitted, SECTION_DATA_COUNT), [2]);
        // [] -> [] appended as type 1; the start is the new function 1.
        assert_eq!(
            body(&fitted, SECTION_TYPE),
            [2, 0x60, 1, 0x7f, 0, 0x60, 0, 0]
        );
        assert_eq!(body(&fitted, SECTION_FUNCTION), [2, 0, 1]);
        assert_eq!(body(&fitted, SECTION_START), [1]);
        let code = body(&fitted, SECTION_CODE);
        let start = start_body(
            7,
            &[Passive {
                index: 1,
                address: 6 * 65_536,
                len: 3,
            }],
            None,
        );
        assert_eq!(code[0], 2);
        assert_eq!(&code[1 + 3..], &start[..]);
        // Sections in the order the format requires, the custom one last as it was.
        let (_, sections) = read_sections(&fitted).unwrap();
        let ids: Vec<u8> = sections.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [1, 2, 3, 6, 8, 12, 10, 11, 0]);
        // Fitted once is fitted.
        assert_eq!(fit_host_memory(&fitted).unwrap(), fitted);
    }
}
