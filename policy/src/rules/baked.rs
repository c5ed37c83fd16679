//! The region `apart build` writes policies into, shared by every guest module.
//!
//! Every guest that links the engine has the region and reads it with [`settings`]. It is
//! two statics: a small header in the data section (the [`MAGIC`], then the linear-memory
//! address of the buffer), and the buffer itself, zero-initialised, so it is in `.bss`,
//! which takes no bytes in the module file. `apart build` finds the header in a copy of the
//! module and writes, at the buffer's address, a little-endian `u32` length and that many
//! bytes of settings JSON (`{"policies": [...]}`): as an added active data segment when the
//! buffer is in `.bss`, in place when the module's data holds it (see `BUFFER`). So the
//! waPC module as built carries no 64 KiB of zeros, and `wasm-opt` (whose memory packing drops
//! runs of zeros from data segments) cannot remove the region. The layout is part of the
//! modules' contract with the CLI.

use std::cell::UnsafeCell;

/// Marks the header: the magic, then the buffer's address as a little-endian `u32`.
pub const MAGIC: [u8; 32] = *b"apart.dev/baked-policies/v2\0\0\0\0\0";
/// Most bytes of settings JSON a module can carry baked in. One 64 KiB page: the OPA-ABI
/// module must fit the memory OPA hosts give it.
pub const CAPACITY: usize = 64 * 1024;
/// The buffer: the length, then the settings.
pub const BUFFER_BYTES: usize = 4 + CAPACITY;

/// The zero-initialised buffer the baked data segment fills at instantiation.
pub struct Buffer(UnsafeCell<[u8; BUFFER_BYTES]>);

// SAFETY: the guest only reads the buffer (with volatile reads); the bytes come from a data
// segment written before any code runs.
#[allow(unsafe_code)]
unsafe impl Sync for Buffer {}

/// What the buffer holds before anything is baked. In a module that defines its memory (the
/// waPC module, wasm32-wasip1) zeros, so the buffer is in `.bss` and takes no space in the file.
/// A module that imports its memory (the OPA-ABI module) zeroes its `.bss` in its start
/// function, after the data segments are written, which would erase what baking wrote; there
/// the buffer starts as non-zero data (a length of `u32::MAX`: nothing baked), which baking
/// overwrites in place.
#[cfg(target_os = "wasi")]
const UNBAKED: u8 = 0;
#[cfg(not(target_os = "wasi"))]
const UNBAKED: u8 = 0xff;

/// Where the buffer is.
static BUFFER: Buffer = Buffer(UnsafeCell::new([UNBAKED; BUFFER_BYTES]));

/// The header as laid out in a module's data section: [`MAGIC`], then the buffer's address.
#[repr(C)]
struct Header {
    magic: [u8; 32],
    buffer: &'static Buffer,
}

/// The header; kept in every module (`#[used]`) so that `apart build` can find it.
#[used]
static HEADER: Header = Header {
    magic: MAGIC,
    buffer: &BUFFER,
};

/// The baked settings, if `apart build` wrote any.
pub fn settings() -> Option<Vec<u8>> {
    let base = HEADER.buffer.0.get().cast::<u8>().cast_const();
    // The compiler sees a zeroed static that nothing writes and would fold this to "nothing
    // baked"; volatile reads make it read the bytes the data segment wrote.
    #[allow(unsafe_code)]
    // SAFETY: every offset is below BUFFER_BYTES (the length is checked against CAPACITY
    // first), so each pointer stays within the `'static` buffer, whose bytes are initialised.
    let read = |offset: usize| unsafe { std::ptr::read_volatile(base.wrapping_add(offset)) };
    let len_bytes: [u8; 4] = std::array::from_fn(read);
    let len = usize::try_from(u32::from_le_bytes(len_bytes)).ok()?;
    if len == 0 || len > CAPACITY {
        return None;
    }
    Some((0..len).map(|i| read(4 + i)).collect())
}
