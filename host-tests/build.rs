//! Embeds the Kubewarden module when `APART_WASM_MODULE` names it (set by `cargo xtask`).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(apart_embedded_module)");
    println!("cargo::rerun-if-env-changed=APART_WASM_MODULE");
    if let Some(path) = std::env::var_os("APART_WASM_MODULE") {
        let path = std::path::PathBuf::from(path);
        if path.is_file() {
            println!("cargo::rerun-if-changed={}", path.display());
            println!("cargo::rustc-cfg=apart_embedded_module");
            println!("cargo::rustc-env=APART_EMBEDDED_MODULE={}", path.display());
        } else {
            println!(
                "cargo::warning=APART_WASM_MODULE={} is not a file; the CLI will look for the module at run time",
                path.display()
            );
        }
    }
}
