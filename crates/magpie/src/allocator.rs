//! The process's allocator: mimalloc instead of the system allocator, tuned
//! so that memory the server freed leaves its resident set.
//!
//! Measured on the message path (docs/performance.md): glibc's malloc and
//! free were a fifth of the server's CPU per message, and its arenas kept
//! the 19 MiB of every password hash after the hash was done (a login
//! burst grew the process to 4 GB with at most `auth.hash_concurrency`
//! hashes alive).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options Magpie sets (their `mi_option_e` indices in
/// mimalloc.h, the same in the v2 and v3 lines), each with the environment
/// variable that, when present, leaves the option to mimalloc, and the value.
///
/// - `purge_delay` (15): how long freed pages stay committed before they
///   go back to the system, ms. mimalloc 3 keeps them 1,000 ms: at tens of
///   thousands of messages a second that is ~25 MiB of resident memory
///   nobody uses (1,000 pairs: median 287 → 260 MiB at the same CPU per
///   message; 10 ms saved ~10 MiB more for ~4% more CPU per message at 100
///   pairs).
/// - `arena_eager_commit` (4): mimalloc's default (2) commits each arena
///   whole when it is reserved on an overcommitting OS (Linux), so its
///   pages count as committed from the start; 0 commits them as they are
///   first used. Measured: 1,000 pairs' median resident heap 230–240 →
///   195–201 MiB at the same CPU per message.
///
/// Both measured in docs/performance.md ("Where the memory under 1,000
/// pairs goes", "mimalloc's eager arena commit").
const TUNED: [(std::ffi::c_int, &std::ffi::CStr, std::ffi::c_long); 2] = [
    (15, c"MIMALLOC_PURGE_DELAY", 100),
    (4, c"MIMALLOC_ARENA_EAGER_COMMIT", 0),
];

unsafe extern "C" {
    /// In the mimalloc library the global allocator links (libmimalloc-sys).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    /// The C library's: reads the environment without allocating.
    fn getenv(name: *const std::ffi::c_char) -> *const std::ffi::c_char;
}

/// Sets the options of `TUNED` that the environment does not choose.
///
/// Must run before the first allocation: mimalloc reserves its first arena
/// (1 GiB of address space, all this server normally uses) then, with the
/// options it has at that moment, and the Rust runtime allocates before
/// `main`. So on Linux it runs from the executable's constructors
/// (`.init_array`), before the runtime and any thread; elsewhere `main`
/// calls it first thing, which still sets the purge delay. Measured: set
/// from `main`, the eager-commit option changed nothing.
pub extern "C" fn tune() {
    for (option, env, value) in TUNED {
        // SAFETY: `env` is a NUL-terminated literal; nothing writes the
        // environment this early (one thread).
        if unsafe { getenv(env.as_ptr()) }.is_null() {
            // SAFETY: one thread so far; the option index is in range.
            unsafe { mi_option_set(option, value) };
        }
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_BEFORE_MAIN: extern "C" fn() = tune;

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    fn get(option: std::ffi::c_int) -> std::ffi::c_long {
        // SAFETY: reads an option; the indices below are in range.
        unsafe { mi_option_get(option) }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_options_are_set_before_main() {
        // The test binary links the same constructor, so `tune` ran before
        // this test's `main` too.
        for (option, env, value) in super::TUNED {
            if std::env::var_os(env.to_str().unwrap()).is_none() {
                assert_eq!(get(option), value, "option {option}");
            }
        }
    }

    #[test]
    fn the_option_indices_name_the_options_tuned() {
        // mimalloc 3's defaults of the options around each one tuned: a
        // renumbering of its list would move them (3 `eager_commit` and 5
        // `purge_decommits` around 4; 16 `use_numa_nodes`, 18 `os_tag`, 19
        // `max_errors` after 15).
        let neighbours = [(3, 1), (5, 1), (16, 0), (18, 100), (19, 32)];
        for (option, default) in neighbours {
            assert_eq!(get(option), default, "option {option}");
        }
    }
}
