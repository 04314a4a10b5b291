//! Compiles the XDP program in `bpf/` with clang (through libbpf-cargo) when the
//! `loader` feature is on. The object is embedded in the library, so a built wheel
//! needs no compiler at run time.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_LOADER").is_none() {
        return;
    }
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let source = manifest_dir.join("../bpf/xsk_redirect.bpf.c");
    println!("cargo:rerun-if-changed={}", source.display());

    // With `-target bpf`, clang does not search the multiarch include directory where
    // Debian keeps <asm/types.h>; add it after the default paths.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        other => other,
    };
    let include = format!("/usr/include/{multiarch}");

    // The program, and the same for kernels before 5.18 (see AFXDP_COMPAT in it).
    for (obj, define) in [
        ("xsk_redirect.bpf.o", None),
        ("xsk_redirect_compat.bpf.o", Some("-DAFXDP_COMPAT")),
    ] {
        let mut args = vec!["-O2", "-Wall", "-idirafter", include.as_str()];
        args.extend(define);
        let result = libbpf_cargo::SkeletonBuilder::new()
            .source(&source)
            .obj(out_dir.join(obj))
            .clang_args(args)
            .build();
        check(result, &source);
    }
}

fn check<T, E: std::fmt::Display>(result: Result<T, E>, source: &std::path::Path) {
    if let Err(err) = result {
        panic!(
            "compiling {} failed: {err:#}\n\
             The XDP program needs clang and the kernel UAPI headers \
             (Debian: apt-get install clang linux-libc-dev). \
             Build without the `loader` feature to skip it.",
            source.display()
        );
    }
}
