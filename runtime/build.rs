//! Links `corten-shim` as a position-dependent executable.
//!
//! One shim runs per container and a fork of it per pod (its pid namespace's
//! init). As a PIE, each of them relocates the binary's `.data.rel.ro` at
//! start (about 280 KiB of vtables and pointers), turning those file pages
//! into private, dirty copies: per process memory that nothing shares. Linked
//! without `-pie` the addresses are fixed at link time, the pages stay the
//! file's, shared by every shim, and start-up does no relocation work. The
//! objects are still position-independent code; only the shim's own image
//! loses address randomisation (libraries, heap and stack keep it), as
//! containerd's Go shims, which are not PIE by default, do.
fn main() {
    println!("cargo:rustc-link-arg-bin=corten-shim=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
