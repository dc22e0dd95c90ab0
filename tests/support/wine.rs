//! Windows programs under Wine: the workspace's programs built for `x86_64-pc-windows-gnu`
//! (`cargo build --target x86_64-pc-windows-gnu -p cryptocat-cli -p cryptocat-server`),
//! started through `scripts/wine-run`, which makes the Wine prefix of the run (in the target
//! directory, once, about 20 s) with the test-only `bcryptprimitives.dll` that Wine 8 lacks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{profile_dir, skip};

/// The Windows target the programs are built for.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// How long a first Windows program may take to start: the first start in a fresh prefix
/// makes it.
pub const FIRST_START: Duration = Duration::from_secs(120);

/// The target directory the tests were built into (`target`).
fn target_dir() -> PathBuf {
    profile_dir().parent().unwrap().to_owned()
}

/// The Windows build of workspace program `name` (`cryptocat`, `cryptocat-server`), in the
/// same profile as the tests: `target/x86_64-pc-windows-gnu/debug/NAME.exe`.
pub fn exe(name: &str) -> PathBuf {
    target_dir()
        .join(TARGET)
        .join(profile_dir().file_name().unwrap())
        .join(format!("{name}.exe"))
}

/// The Wine prefix of the run (`CRYPTOCAT_WINEPREFIX`, else `target/wine-prefix`).
pub fn prefix() -> PathBuf {
    std::env::var_os("CRYPTOCAT_WINEPREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("wine-prefix"))
}

/// Whether Wine is installed (Debian's `wine64`).
fn wine_installed() -> bool {
    Path::new("/usr/lib/wine/wine64").exists()
        || std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths)
                .any(|dir| dir.join("wine64").exists() || dir.join("wine").exists())
        })
}

/// Whether Wine, mingw-w64 (for the shim) and the Windows builds of `programs` are there;
/// else [`skip`].
pub fn ready(programs: &[&str]) -> bool {
    if !wine_installed() {
        return skip("Wine is missing (apt install wine64)");
    }
    if !crate::tools_present(&["x86_64-w64-mingw32-gcc"]) {
        return false;
    }
    for name in programs {
        let path = exe(name);
        if !path.exists() {
            return skip(&format!(
                "{} is missing: build it with `cargo build --target {TARGET} -p cryptocat-cli \
                 -p cryptocat-server`",
                path.display()
            ));
        }
    }
    true
}

/// A command that runs the Windows build of `name` under Wine.
pub fn command(name: &str) -> Command {
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/wine-run");
    let mut command = Command::new(runner);
    command.arg(exe(name)).env("CRYPTOCAT_WINEPREFIX", prefix());
    command
}

/// `path` as a Windows program under Wine names it (drive `Z:` is the Linux root).
pub fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_paths_are_on_drive_z() {
        assert_eq!(
            windows_path(Path::new("/tmp/cryptocat-test-x/state")),
            r"Z:\tmp\cryptocat-test-x\state"
        );
    }
}
