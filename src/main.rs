//! The `gridhub` binary: parse the command line and hand over to the library.

// mimalloc: the intake allocates many small, short-lived buffers on many threads (protobuf,
// JSON, bind arrays); glibc's malloc spent a fifth of the server's CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gridhub::cli::main()
}
