//! Embeds the policy modules `cargo xtask build` built: the Kubewarden waPC module
//! (`APART_WASM_MODULE`) and the OPA-ABI module (`APART_OPA_MODULE`, for `apart build --mode
//! gatekeeper`).
fn embed(var: &str, cfg: &str, env: &str) {
    println!("cargo::rustc-check-cfg=cfg({cfg})");
    println!("cargo::rerun-if-env-changed={var}");
    if let Some(path) = std::env::var_os(var) {
        let path = std::path::PathBuf::from(path);
        if path.is_file() {
            println!("cargo::rerun-if-changed={}", path.display());
            println!("cargo::rustc-cfg={cfg}");
            println!("cargo::rustc-env={env}={}", path.display());
        } else {
            println!(
                "cargo::warning={var}={} is not a file; the CLI will look for the module at run time",
                path.display()
            );
        }
    }
}

fn main() {
    embed(
        "APART_WASM_MODULE",
        "apart_embedded_module",
        "APART_EMBEDDED_MODULE",
    );
    embed(
        "APART_OPA_MODULE",
        "apart_embedded_opa_module",
        "APART_EMBEDDED_OPA_MODULE",
    );
}
