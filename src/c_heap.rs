//! The C allocator (glibc's malloc) that ONNX Runtime and librdkafka use; sluice's own memory is
//! mimalloc's. Two settings, made once per process before either library allocates:
//!
//! - **Two arenas.** glibc gives each thread that allocates an arena of its own, up to 8 per
//!   core, and keeps what was freed in it: sessions built and dropped on many threads, one per
//!   model swap, made the process grow by about 20 MiB per 1,000 swaps that way (`cargo bench
//!   --bench swaps`). Two arenas, and memory handed back when a model version is released
//!   ([`release_free`]), keep it flat.
//! - **Freed memory kept for reuse.** By default glibc hands the free top of an arena back to
//!   the system once it passes 128 KiB (or twice the largest block it has mapped on its own),
//!   and maps blocks larger than that afresh each time. librdkafka reads each fetch response into
//!   a new buffer of a few hundred KiB and frees it soon after: every response then costs the
//!   kernel fresh zeroed pages. On the Kafka path (10 ms fetches) the kernel's page zeroing was
//!   7.5% of all of sluice's samples; with the thresholds below 2.9%, and the process scored 9%
//!   more records a second on 12% less CPU a record (`cargo bench --bench kafka`, the two
//!   settings in the same rounds). Blocks of 32 MiB and more (a large model's weights) are still
//!   mapped on their own and handed back when freed; up to 128 MiB free at the top of an arena
//!   is kept, and [`release_free`] hands it back when a model version is released.
//!
//! `GLIBC_TUNABLES` keeps the last word: a threshold it sets is left as it is.

use std::sync::Once;

/// Blocks this large or larger are mapped on their own (glibc's largest dynamic threshold).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of an arena up to this much is kept for reuse.
const TRIM_THRESHOLD: i32 = 128 << 20;

/// Sets the arenas and thresholds, once; before the first allocation of either C library.
pub fn tune() {
    static TUNED: Once = Once::new();
    TUNED.call_once(|| {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let set_by_user = |name: &str| tunables.contains(&format!("glibc.malloc.{name}="));
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets tunables of the allocator; it touches no allocation.
        unsafe {
            if !set_by_user("arena_max") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if !set_by_user("mmap_threshold") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
            if !set_by_user("trim_threshold") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let _ = set_by_user;
    });
}

/// Hands freed memory in the arenas back to the system (after a model version is released).
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_block_under_the_threshold_comes_from_the_arena_not_a_mapping_of_its_own() {
        super::tune();
        // glibc marks a block it mapped on its own in the size word before it (bit 1,
        // IS_MMAPPED). Without the thresholds a 1 MiB block is mapped afresh (the default
        // threshold is 128 KiB); with them it comes from the arena and is kept for reuse.
        let size = 1 << 20;
        // SAFETY: malloc and free of a block this test owns; the word read lies in the chunk
        // header glibc puts before every block it hands out.
        let mapped = unsafe {
            let block = libc::malloc(size);
            assert!(!block.is_null());
            let mapped = *(block as *const usize).sub(1) & 2 != 0;
            libc::free(block);
            mapped
        };
        assert!(!mapped, "a 1 MiB block was mapped on its own");
    }
}
