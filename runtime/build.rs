//! Records how this build of packhost was compiled (cargo profile, optimisation level), so
//! `packhost::build_info()` can tell a user whether they run an optimised build.

fn main() {
    // OUT_DIR is <target>/[<triple>/]<profile dir>/build/packhost-<hash>/out: the profile's
    // directory is the one named by the profile (`debug` for `dev`, custom profiles by name),
    // which PROFILE alone does not tell (it says only `debug` or `release`).
    let out_dir = std::env::var("OUT_DIR").unwrap_or_default();
    let profile_dir = std::path::Path::new(&out_dir)
        .ancestors()
        .nth(3)
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .unwrap_or("unknown");
    let profile = match profile_dir {
        "debug" => "dev".to_string(),
        "unknown" => std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into()),
        other => other.to_string(),
    };
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=PACKHOST_BUILD_PROFILE={profile}");
    println!("cargo:rustc-env=PACKHOST_BUILD_OPT_LEVEL={opt_level}");
    println!("cargo:rerun-if-changed=build.rs");
}
