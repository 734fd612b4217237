//! `kubeflex-reconciler`: not implemented yet (see the reconciler issue).

fn main() -> std::process::ExitCode {
    eprintln!("kubeflex-reconciler: syncing from Git is not implemented yet");
    std::process::ExitCode::FAILURE
}
