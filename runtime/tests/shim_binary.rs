//! The shim binary is linked position-dependent (see `runtime/build.rs`):
//! its relocated data would otherwise be a private copy in every shim.

#![allow(clippy::unwrap_used)]

#[test]
fn the_shim_is_not_a_pie_so_its_data_pages_are_shared() {
    let elf = std::fs::read(env!("CARGO_BIN_EXE_corten-shim")).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    // e_type, little-endian at offset 16: 2 is ET_EXEC, 3 ET_DYN (a PIE).
    let e_type = u16::from_le_bytes([elf[16], elf[17]]);
    assert_eq!(e_type, 2, "corten-shim is ET_DYN: linked as a PIE");
}
