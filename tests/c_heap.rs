//! glibc's thresholds as sluice sets them (`src/c_heap.rs`), in a test binary of its own: glibc
//! raises its mmap threshold by itself whenever a block it had mapped is freed, so any other
//! test in the same process could make this one pass without the setting.

#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
#[test]
fn a_block_under_the_mmap_threshold_comes_from_the_arena_not_a_mapping_of_its_own() {
    sluice::c_heap::keep_freed();
    // glibc marks a block it mapped on its own in the size word before it (bit 1,
    // IS_MMAPPED). With glibc's defaults a 1 MiB block in a fresh process is mapped afresh (its
    // threshold starts at 128 KiB); with sluice's thresholds it comes from the arena.
    let size = 1 << 20;
    // SAFETY: malloc and free of a block this test owns; the word read is the chunk header
    // glibc puts before every block it hands out.
    let mapped = unsafe {
        let block = libc::malloc(size);
        assert!(!block.is_null());
        let mapped = *(block as *const usize).sub(1) & 2 != 0;
        libc::free(block);
        mapped
    };
    assert!(!mapped, "a 1 MiB block was mapped on its own");
}
