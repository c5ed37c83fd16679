//! A cursor over JSON text, stepping over whole tokens and values, for the two places that
//! walk a text serde_json has read (or refused) without building anything: finding the member
//! a repair rewrites ([`super::splice`]) and finding the node a reading error is about
//! ([`super::locate`]). Strings are stepped over with `memchr`.

use std::ops::Range;

/// A position in JSON text, moved over whole tokens and values.
pub(crate) struct Scan<'t> {
    /// The text.
    pub(crate) bytes: &'t [u8],
    /// The next byte to read.
    pub(crate) at: usize,
}

impl<'t> Scan<'t> {
    pub(crate) fn new(bytes: &'t [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    pub(crate) fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    pub(crate) fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Steps over the string that starts here; its range, quotes included.
    pub(crate) fn string(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        self.at += 1;
        loop {
            let rest = self.bytes.get(self.at..)?;
            let found = memchr::memchr2(b'"', b'\\', rest)?;
            self.at += found;
            if self.peek()? == b'"' {
                self.at += 1;
                return Some(start..self.at);
            }
            // A backslash escapes the byte after it (the rest of `\uXXXX` is plain).
            self.at += 2;
        }
    }

    /// Reads a member's key and its colon; the key's text, quotes included.
    pub(crate) fn key(&mut self) -> Option<&'t [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let range = self.string()?;
        self.space();
        self.expect(b':')?;
        self.bytes.get(range)
    }

    /// Steps over the value that starts here (after any space); its range.
    pub(crate) fn value(&mut self) -> Option<Range<usize>> {
        self.space();
        let start = self.at;
        match self.peek()? {
            b'"' => return self.string(),
            b'{' | b'[' => {
                let mut depth = 0_usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(start..self.at);
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.at += 1;
                }
            }
        }
        (self.at > start).then_some(start..self.at)
    }
}
