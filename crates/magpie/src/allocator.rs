//! The process's allocator: mimalloc instead of the system allocator, with
//! freed memory returned to the system sooner than mimalloc's default.
//!
//! Measured on the message path (docs/performance.md): glibc's malloc and
//! free were a fifth of the server's CPU per message, and its arenas kept
//! the 19 MiB of every password hash after the hash was done (a login
//! burst grew the process to 4 GB with at most `auth.hash_concurrency`
//! hashes alive).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mi_option_e` in mimalloc.h,
/// the same index in the v2 and v3 lines): how long freed pages stay
/// committed before they go back to the system, ms.
const PURGE_DELAY: std::ffi::c_int = 15;

/// What Magpie sets it to. mimalloc 3 keeps freed pages for 1,000 ms: at
/// tens of thousands of messages a second that is ~25 MiB of resident
/// memory nobody uses (1,000 pairs: median 287 → 260 MiB at the same CPU
/// per message; 10 ms saved ~10 MiB more for ~4% more CPU per message at
/// 100 pairs; docs/performance.md, "Where the memory under 1,000 pairs
/// goes").
const PURGE_DELAY_MS: std::ffi::c_long = 100;

unsafe extern "C" {
    /// In the mimalloc library the global allocator links (libmimalloc-sys).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Sets the purge delay unless `MIMALLOC_PURGE_DELAY` chose one. Call
/// before any other thread starts (mimalloc's options are plain
/// variables).
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: one thread so far; the option index is in range.
        unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    #[test]
    fn the_option_index_names_the_purge_delay() {
        // Nothing here calls `tune`: the option holds mimalloc 3's default
        // purge delay, which no other option of its list has.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an option; the index is in range.
            assert_eq!(unsafe { mi_option_get(super::PURGE_DELAY) }, 1_000);
        }
    }
}
