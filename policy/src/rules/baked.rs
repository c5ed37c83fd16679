//! The region `apart build` writes policies into, shared by every guest module.
//!
//! A guest declares `#[used] static BAKED: BakedRegion = BakedRegion::EMPTY;`. In the module
//! as built the region is empty; `apart build` finds [`MAGIC`] in a copy of the module and
//! overwrites the length and data in place, so the module's structure never changes and no
//! toolchain is needed to bake. The layout is part of the module's contract with the CLI.

/// Marks the region: the magic, a little-endian `u32` length, then that many bytes of
/// settings JSON (`{"policies": [...]}`).
pub const MAGIC: [u8; 32] = *b"apart.dev/baked-policies/v1\0\0\0\0\0";
/// Most bytes of settings JSON a module can carry baked in.
pub const CAPACITY: usize = 64 * 1024;

/// The region as laid out in a module's data section.
#[repr(C)]
pub struct BakedRegion {
    magic: [u8; 32],
    len: [u8; 4],
    data: [u8; CAPACITY],
}

impl BakedRegion {
    /// The region as a guest declares it: nothing baked.
    pub const EMPTY: Self = Self {
        magic: MAGIC,
        len: [0; 4],
        data: [0; CAPACITY],
    };

    /// The baked settings, if `apart build` wrote any.
    pub fn settings(&'static self) -> Option<Vec<u8>> {
        // The compiler sees a static whose length is zero and would fold this to "nothing
        // baked"; volatile reads make it read the bytes `apart build` wrote.
        #[allow(unsafe_code)]
        // SAFETY: each pointer is derived from a field of this `'static` region and stays
        // within it (indexes below the field's length); the bytes are initialised.
        let read = |p: *const u8| unsafe { std::ptr::read_volatile(p) };
        let len_bytes: [u8; 4] = std::array::from_fn(|i| read(self.len.as_ptr().wrapping_add(i)));
        let len = usize::try_from(u32::from_le_bytes(len_bytes)).ok()?;
        if len == 0 || len > CAPACITY {
            return None;
        }
        Some(
            (0..len)
                .map(|i| read(self.data.as_ptr().wrapping_add(i)))
                .collect(),
        )
    }
}
