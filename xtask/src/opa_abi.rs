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

/// How many globals the import section imports.
fn imported_globals(body: &[u8]) -> Result<u64, String> {
    let mut r = Reader { bytes: body, at: 0 };
    let mut globals = 0;
    for _ in 0..r.uleb()? {
        r.name()?;
        r.name()?;
        match r.byte()? {
            0 => {
                r.uleb()?;
            }
            1 => {
                // table: reftype, limits
                r.byte()?;
                let flags = r.byte()?;
                r.uleb()?;
                if flags & 1 != 0 {
                    r.uleb()?;
                }
            }
            2 => {
                let flags = r.byte()?;
                r.uleb()?;
                if flags & 1 != 0 {
                    r.uleb()?;
                }
            }
            KIND_GLOBAL => {
                r.byte()?;
                r.byte()?;
                globals += 1;
            }
            other => return Err(format!("unknown import kind {other}")),
        }
    }
    Ok(globals)
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

/// The module with the two ABI version globals defined and exported.
pub fn add_version_globals(module: &[u8]) -> Result<Vec<u8>, String> {
    let header = module.get(..8).ok_or("not a Wasm module")?;
    if header.get(..4) != Some(b"\0asm".as_slice()) {
        return Err("not a Wasm module".to_owned());
    }
    let mut r = Reader {
        bytes: module,
        at: 8,
    };
    let mut sections: Vec<(u8, &[u8])> = Vec::new();
    while r.at < module.len() {
        let id = r.byte()?;
        let len = usize::try_from(r.uleb()?).map_err(|e| e.to_string())?;
        sections.push((id, r.take(len)?));
    }
    let imported = match sections.iter().find(|(id, _)| *id == SECTION_IMPORT) {
        Some((_, body)) => imported_globals(body)?,
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
