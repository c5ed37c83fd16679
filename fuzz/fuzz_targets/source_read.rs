//! The YAML/JSON source reader: any text is documents or a syntax error with a position in
//! the text; reading it whole and reading it in parts (as `apart check` streams a file) give
//! the same documents; every document's lines lie inside the text, and its root is recorded.
#![no_main]

use apart_policy::source::read;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let whole = read::parse_documents(text);
    match &whole {
        Err(e) => {
            assert!(e.position.offset <= text.len(), "error past the end: {e:?}");
            assert!(e.position.line >= 1);
        }
        Ok(docs) => {
            for d in docs {
                let lines = d.lines(text);
                assert!(lines.start <= lines.end && lines.end <= text.len());
                assert!(text.get(lines).is_some(), "lines cut a character");
            }
        }
    }
    // In parts: the same values in the same order, or an error too.
    let mut parted = Vec::new();
    let mut failed = false;
    for chunk in read::chunks(text) {
        for doc in read::chunk_documents(text, &chunk) {
            match doc {
                Ok(d) => parted.push(d.value),
                Err(_) => failed = true,
            }
            if failed {
                break;
            }
        }
        if failed {
            break;
        }
    }
    match whole {
        Ok(docs) => {
            assert!(!failed, "whole text reads, a part does not");
            let values: Vec<_> = docs.into_iter().map(|d| d.value).collect();
            assert_eq!(values, parted, "parts read differently");
        }
        Err(_) => assert!(failed, "a part reads what the whole text refuses"),
    }
});
