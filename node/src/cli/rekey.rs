//! `caja-node rekey`: installs the key head office gave this register with
//! `caja-hub admin rotate DEVICE --no-grace` (a hub restored from an older
//! backup lost the register's key; or the register was restored on new
//! hardware without its key file). The key comes from a file, never an
//! argument (arguments show in `ps`). See docs/backup-restore.md.

use caja_node::datadir::rekey as install_key;
use caja_node::messages;
use caja_shared::ids::KeyId;
use caja_shared::key::DeviceKey;

use super::args::RekeyArgs;
use super::common::{emit, refused, Ctx, Failure};

/// `caja-node rekey`.
pub(crate) fn rekey(cx: &Ctx, args: RekeyArgs) -> Result<(), Failure> {
    let key_id: KeyId = args
        .key_id
        .parse()
        .map_err(|e| refused(format!("--key-id: {e}")))?;
    let path = args.key_file.display().to_string();
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&args.key_file)
            .map_err(|e| refused(messages::rekey_bad_key_file(&path, &e.to_string())))?,
    );
    let key = DeviceKey::from_hex(text.trim())
        .map_err(|e| refused(messages::rekey_bad_key_file(&path, &e.to_string())))?;
    let device = install_key(&cx.dir, &key_id, &key)?;
    let v = serde_json::json!({"device": device, "key_id": key_id.as_str()});
    emit(cx.json, &v, |_| {
        messages::rekey_done(&device.to_string(), key_id.as_str())
    })
}
