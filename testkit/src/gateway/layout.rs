//! How the configuration file is written and rewritten: in place, or as the kubelet lays out a
//! ConfigMap volume.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use super::CONFIG_FILE;

/// Writes the first version of the configuration into `dir`.
pub(super) fn write_first(dir: &Path, kubernetes: bool, config: &str) {
    if kubernetes {
        write_kubernetes_version(dir, "v1", config);
        let link = Path::new("..data").join(CONFIG_FILE);
        std::os::unix::fs::symlink(link, dir.join(CONFIG_FILE)).expect("symlink");
    } else {
        std::fs::write(dir.join(CONFIG_FILE), config).expect("write config");
    }
}

/// Replaces the configuration in `dir` at once, as an editor saving the file or the kubelet
/// swapping the volume would: the gateway never reads a half-written file.
pub(super) fn rewrite(dir: &Path, kubernetes: bool, config: &str) {
    if kubernetes {
        static VERSION: AtomicU32 = AtomicU32::new(2);
        let version = format!("v{}", VERSION.fetch_add(1, Ordering::Relaxed));
        write_kubernetes_version(dir, &version, config);
    } else {
        let tmp = dir.join("tollgate.toml.tmp");
        std::fs::write(&tmp, config).expect("write config");
        std::fs::rename(tmp, dir.join(CONFIG_FILE)).expect("replace config");
    }
}

/// Writes `config` into `<dir>/<version>/tollgate.toml` and points `<dir>/..data` at it
/// atomically (a new symlink renamed over the old one), as the kubelet does.
fn write_kubernetes_version(dir: &Path, version: &str, config: &str) {
    std::fs::create_dir_all(dir.join(version)).expect("version dir");
    std::fs::write(dir.join(version).join(CONFIG_FILE), config).expect("write config");
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
}
