//! `ironfence`: the command line. Everything happens in `ironfence::cli`.

fn main() -> std::process::ExitCode {
    ironfence::cli::main()
}
