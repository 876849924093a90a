//! The C allocator (glibc's malloc) that ONNX Runtime and librdkafka use; sluice's own memory is
//! mimalloc's.
//!
//! - **Freed memory kept for reuse** ([`keep_freed`], at start-up). By default glibc's
//!   thresholds move with the program: freeing a block it had mapped on its own raises its mmap
//!   threshold to that block's size and its trim threshold to twice that, and the free top of an
//!   arena beyond the trim threshold goes back to the system. librdkafka reads each fetch
//!   response into a buffer of up to a few MiB and frees it soon after, so the top of its arena
//!   kept going back and coming again: the kernel zeroing fresh pages (`clear_page_erms`) was
//!   7.5% of the full Kafka pipeline's samples, and 2.9% with thresholds fixed (at 32 and 128
//!   MiB in that profile). What that is worth in records a second is within this machine's
//!   noise: four A/B runs of `cargo bench --bench kafka` disagreed (README, session 17). With
//!   the thresholds fixed, blocks from 32 MiB up are mapped on their own when the arena has no
//!   free room for them, and up to 32 MiB free at the top of an arena (or of one of a second
//!   arena's heaps, which are at most 64 MiB each) is kept.
//! - **Two arenas** ([`limit_arenas`], before ONNX Runtime's first allocation). glibc gives each
//!   thread that allocates an arena of its own, up to 8 per core, and keeps what was freed in it:
//!   sessions built and dropped on many threads, one per model swap, made the process grow by
//!   about 20 MiB per 1,000 swaps that way (`cargo bench --bench swaps`). Two arenas, and memory
//!   handed back when a model version is released ([`release_free`]), keep it flat.
//!
//! The user keeps the last word: a setting named in `GLIBC_TUNABLES`, or in glibc's older
//! variables (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`), is left
//! as it is.

use std::sync::Once;

/// Blocks this large or larger are mapped on their own: glibc's largest mmap threshold (32 MiB
/// on 64-bit systems, 16 MiB on 32-bit ones).
const MMAP_THRESHOLD: usize = 4 * 1024 * 1024 * std::mem::size_of::<usize>();
/// Free memory at the top of an arena up to this much is kept for reuse: below a second
/// arena's heap size (64 MiB), so that such a heap shrinks too.
const TRIM_THRESHOLD: usize = 32 << 20;

/// Whether the user set glibc's tunable `name` (`glibc.malloc.<name>` in `GLIBC_TUNABLES`) or
/// its older variable `legacy`.
fn set_by_user(name: &str, legacy: &str) -> bool {
    let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    std::env::var_os(legacy).is_some() || named_in(&tunables.to_string_lossy(), name)
}

/// Whether `tunables` (`GLIBC_TUNABLES`' text: `name=value` pairs between colons) sets
/// `glibc.malloc.<name>`.
fn named_in(tunables: &str, name: &str) -> bool {
    let full = format!("glibc.malloc.{name}");
    tunables
        .split(':')
        .any(|setting| setting.split_once('=').is_some_and(|(key, _)| key == full))
}

/// Sets one setting with `mallopt` unless the user did; says so when glibc refuses it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(option: libc::c_int, value: usize, name: &str, legacy: &str) {
    if set_by_user(name, legacy) {
        return;
    }
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets a tunable of the allocator; it touches no allocation.
    if unsafe { libc::mallopt(option, value) } == 0 {
        tracing::debug!(setting = name, value, "glibc's malloc refused a setting");
    }
}

/// Fixes glibc's mmap and trim thresholds, once; at start-up, before librdkafka allocates.
pub fn keep_freed() {
    static DONE: Once = Once::new();
    DONE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            set(
                libc::M_MMAP_THRESHOLD,
                MMAP_THRESHOLD,
                "mmap_threshold",
                "MALLOC_MMAP_THRESHOLD_",
            );
            set(
                libc::M_TRIM_THRESHOLD,
                TRIM_THRESHOLD,
                "trim_threshold",
                "MALLOC_TRIM_THRESHOLD_",
            );
        }
    });
}

/// Limits glibc to two arenas, once; before ONNX Runtime's first allocation.
pub fn limit_arenas() {
    static DONE: Once = Once::new();
    DONE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        set(libc::M_ARENA_MAX, 2, "arena_max", "MALLOC_ARENA_MAX");
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
    use super::{named_in, set_by_user};

    #[test]
    fn a_setting_named_in_glibc_tunables_is_the_users() {
        let tunables = "glibc.malloc.arena_max=4:glibc.malloc.trim_threshold=1048576";
        assert!(named_in(tunables, "trim_threshold"));
        assert!(named_in(tunables, "arena_max"));
        assert!(!named_in(tunables, "mmap_threshold"));
        assert!(
            !named_in("glibc.malloc.mmap_threshold_x=1", "mmap_threshold"),
            "a longer name"
        );
        assert!(!named_in("", "arena_max"));
    }

    #[test]
    fn a_setting_whose_older_variable_is_set_is_the_users() {
        // PATH stands for a variable that is set; the test's environment is not changed.
        assert!(set_by_user("no_such_setting", "PATH"));
        assert!(!set_by_user("no_such_setting", "SLUICE_NO_SUCH_VARIABLE"));
    }
}
