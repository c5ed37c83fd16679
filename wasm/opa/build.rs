//! Link options the OPA ABI needs, for the wasm32 build only.
//!
//! OPA hosts create the memory themselves (`env.memory`, 5 pages to start) and hand it to the
//! module, so the module imports its memory instead of defining it, and exports it too (ABI
//! 1.1). A module's imported memory must not require more pages than the host creates (5 by
//! default): the stack is kept small (the engine's recursion is shallow: objects are read in
//! one pass, nesting bounded by serde_json's limit of 128), and `cargo xtask build` makes the
//! import ask for the stack's 2 pages only and lays the data from a start function.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch == "wasm32" {
        for arg in ["--import-memory", "--export-memory", "-zstack-size=131072"] {
            println!("cargo:rustc-cdylib-link-arg={arg}");
        }
    }
}
