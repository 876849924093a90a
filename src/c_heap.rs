//! The C heap is mimalloc's too. librdkafka and ONNX Runtime allocate with `malloc` and `free`;
//! sluice is built with mimalloc defining them (libmimalloc-sys's `override` feature: the
//! definitions are linked into the executable, which exports them, so librdkafka linked in,
//! ONNX Runtime loaded at run time and libc itself all bind to them). One heap serves the
//! whole process, the one sluice's own Rust code uses; glibc's malloc serves nothing, and its
//! tunables (`GLIBC_TUNABLES`, `MALLOC_ARENA_MAX`, ...) change nothing in sluice.
//!
//! Why: librdkafka allocates each message it is given (one block for the payload and key, four
//! for the two lineage headers) on the thread that produces it, and frees it on the thread that serves its
//! delivery report. glibc gives each of those threads its own cache and arena, so every such
//! block went through its slow path and its arena's lock on both threads: glibc's allocator
//! took 9% of bare sluice's samples with the headers on and 2–3% without them (`perf`,
//! Kafka → Kafka). mimalloc hands a block freed by another thread back to its owner's page
//! without a lock. In the same rounds of `cargo bench --bench kafka` (README, session 19) the
//! full Kafka pipeline ran 117% of the throughput it had with glibc's malloc for the C
//! libraries (median of 12 rounds), at 84% of its own CPU a record.
//!
//! mimalloc asks for no transparent huge pages (libmimalloc-sys's `no_thp`): with them the
//! kernel zeroed 2 MiB pages over and over (`clear_page_erms`, 3–14% of sluice's samples), and
//! resident memory was rounded up to them (the full in-memory pipeline peaked at 74 MiB,
//! against 50 without).
//!
//! Before this, sluice tuned glibc's malloc instead (fixed mmap and trim thresholds, two
//! arenas once ONNX Runtime started, a trim after a model version was released), to keep its
//! memory flat across model swaps and its fetch buffers from being handed back and zeroed anew;
//! `cargo bench --bench swaps` stays flat with mimalloc alone.

/// Hands the calling thread's freed memory back to the system; called once a model version's
/// sessions are released or a new one is loaded (ONNX Runtime's memory and sluice's own: model
/// bytes, descriptors read, the test inference). mimalloc keeps freed pages for a thread until
/// that thread allocates again, and the blocking threads that load models and drop old ones
/// may then sit idle for a long time (1,000 swaps kept about 12 MiB so).
pub fn release_free() {
    // SAFETY: mi_collect only returns this thread's free memory to the system.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Whether a block of `size` bytes from the C library's `malloc` comes from mimalloc's heap.
pub fn serves_malloc(size: usize) -> bool {
    // SAFETY: malloc and free of a block this function owns; mi_is_in_heap_region only compares
    // an address with mimalloc's own regions.
    unsafe {
        let block = libc::malloc(size);
        if block.is_null() {
            return false;
        }
        let ours = libmimalloc_sys::mi_is_in_heap_region(block);
        libc::free(block);
        ours
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_block_from_the_c_librarys_malloc_is_mimallocs() {
        for size in [16, 4096, 1 << 20, 64 << 20] {
            assert!(
                super::serves_malloc(size),
                "a block of {size} bytes from malloc is not mimalloc's: the C libraries would allocate from another heap"
            );
        }
    }
}
