//! Device addresses, as written in the node's configuration:
//!
//! ```text
//! printer = "tcp://192.168.1.50:9100"          network printer (port 9100 if omitted)
//! printer = "serial:///dev/ttyUSB0?baud=19200" serial printer (baud 9600 if omitted)
//! printer = "usb:///dev/usb/lp0"               USB printer class device file
//! printer = "file:///var/lib/caja/receipts.bin" previews: bytes appended to a file
//! printer = "folder:///var/lib/caja/receipts"  no printer: one .txt + .bin per receipt
//! scale   = "toledo:///dev/ttyS0"              Toledo 8217 scale
//! scale   = "cas:///dev/ttyUSB1?baud=9600&capacity_g=30000"
//! ```
//!
//! **Architecture invariant: parsing is pure;** only [`PrinterAddress::open`] and
//! [`ScaleAddress::open`] touch devices.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use caja_shared::money::QtyMilli;

use crate::scale::reader::{ScaleConfig, ScaleError, ScaleReader};
use crate::scale::Protocol;
use crate::transport::{
    FileTransport, FolderTransport, SerialTransport, TcpTransport, Transport, TransportError,
    DEFAULT_TCP_PORT,
};

/// Text width of a folder printer's copies when none is given (80 mm paper).
pub const DEFAULT_FOLDER_COLUMNS: usize = 48;

/// The default serial speed of receipt printers.
pub const DEFAULT_PRINTER_BAUD: u32 = 9600;

/// Where a printer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterAddress {
    /// `tcp://host[:port]`.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port (default 9100).
        port: u16,
    },
    /// `serial:///dev/…[?baud=n]`.
    Serial {
        /// The port.
        path: String,
        /// Bits per second.
        baud: u32,
    },
    /// `usb:///dev/usb/lp0`.
    Usb {
        /// The device file.
        path: PathBuf,
    },
    /// `file:///…`.
    File {
        /// The file the bytes are appended to.
        path: PathBuf,
    },
    /// `folder:///…`: a virtual printer, one pair of files per job
    /// ([`FolderTransport`]).
    Folder {
        /// The folder.
        path: PathBuf,
    },
}

/// Where a scale is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleAddress {
    /// The protocol (the address scheme).
    pub protocol: Protocol,
    /// The serial port.
    pub path: String,
    /// Speed, when not the protocol's default.
    pub baud: Option<u32>,
    /// The scale's capacity in grams, when not the default 15 kg.
    pub capacity: Option<QtyMilli>,
}

/// An address that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No `scheme://`.
    #[error("{0:?} is not an address (expected scheme://…)")]
    NoScheme(String),
    /// A scheme we do not know.
    #[error("unknown device type {scheme:?} in {address:?}")]
    UnknownScheme {
        /// The scheme.
        scheme: String,
        /// The address.
        address: String,
    },
    /// Empty path or host.
    #[error("{0:?} names no device")]
    Empty(String),
    /// A bad port, baud rate, capacity or unknown parameter.
    #[error("bad parameter {name:?} in {address:?}")]
    BadParameter {
        /// The parameter.
        name: String,
        /// The address.
        address: String,
    },
}

/// An address cut in parts: scheme, target (path or host), `k=v` parameters.
struct Parts<'a> {
    scheme: &'a str,
    target: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

/// Splits `scheme://rest?query` and parses `k=v&…` with only `allowed` keys.
fn split<'a>(address: &'a str, allowed: &[&str]) -> Result<Parts<'a>, AddressError> {
    let (scheme, rest) = address
        .split_once("://")
        .ok_or_else(|| AddressError::NoScheme(address.to_string()))?;
    let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
    if target.is_empty() {
        return Err(AddressError::Empty(address.to_string()));
    }
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&k) {
            return Err(AddressError::BadParameter {
                name: k.to_string(),
                address: address.to_string(),
            });
        }
        params.push((k, v));
    }
    Ok(Parts {
        scheme,
        target,
        params,
    })
}

fn number<T: FromStr>(address: &str, name: &str, value: &str) -> Result<T, AddressError> {
    value.parse().map_err(|_| AddressError::BadParameter {
        name: name.to_string(),
        address: address.to_string(),
    })
}

impl FromStr for PrinterAddress {
    type Err = AddressError;

    fn from_str(address: &str) -> Result<PrinterAddress, AddressError> {
        let Parts {
            scheme,
            target,
            params,
        } = split(address, &["baud"])?;
        let baud = match params.iter().find(|(k, _)| *k == "baud") {
            Some((k, v)) => number::<u32>(address, k, v)?,
            None => DEFAULT_PRINTER_BAUD,
        };
        if scheme != "serial" && !params.is_empty() {
            return Err(AddressError::BadParameter {
                name: "baud".into(),
                address: address.to_string(),
            });
        }
        match scheme {
            "tcp" => {
                let (host, port) = match target.rsplit_once(':') {
                    Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                        (h, number::<u16>(address, "port", p)?)
                    }
                    _ => (target, DEFAULT_TCP_PORT),
                };
                if host.is_empty() {
                    return Err(AddressError::Empty(address.to_string()));
                }
                Ok(PrinterAddress::Tcp {
                    host: host.to_string(),
                    port,
                })
            }
            "serial" => Ok(PrinterAddress::Serial {
                path: target.to_string(),
                baud,
            }),
            "usb" => Ok(PrinterAddress::Usb {
                path: PathBuf::from(target),
            }),
            "file" => Ok(PrinterAddress::File {
                path: PathBuf::from(target),
            }),
            "folder" => Ok(PrinterAddress::Folder {
                path: PathBuf::from(target),
            }),
            other => Err(AddressError::UnknownScheme {
                scheme: other.to_string(),
                address: address.to_string(),
            }),
        }
    }
}

impl fmt::Display for PrinterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrinterAddress::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            PrinterAddress::Serial { path, baud } => write!(f, "serial://{path}?baud={baud}"),
            PrinterAddress::Usb { path } => write!(f, "usb://{}", path.display()),
            PrinterAddress::File { path } => write!(f, "file://{}", path.display()),
            PrinterAddress::Folder { path } => write!(f, "folder://{}", path.display()),
        }
    }
}

impl PrinterAddress {
    /// Opens the transport (connecting within `connect_timeout` for TCP); a
    /// folder printer writes its text copies 48 columns wide.
    pub fn open(&self, connect_timeout: Duration) -> Result<Box<dyn Transport>, TransportError> {
        self.open_with(connect_timeout, DEFAULT_FOLDER_COLUMNS)
    }

    /// Opens the transport; `columns` is the paper width a folder printer uses
    /// for its text copies (other transports ignore it).
    pub fn open_with(
        &self,
        connect_timeout: Duration,
        columns: usize,
    ) -> Result<Box<dyn Transport>, TransportError> {
        Ok(match self {
            PrinterAddress::Tcp { host, port } => Box::new(TcpTransport::connect(
                &format!("{host}:{port}"),
                connect_timeout,
            )?),
            PrinterAddress::Serial { path, baud } => Box::new(SerialTransport::open(path, *baud)?),
            PrinterAddress::Usb { path } => Box::new(FileTransport::open_device(path)?),
            PrinterAddress::File { path } => Box::new(FileTransport::create(path)?),
            PrinterAddress::Folder { path } => Box::new(FolderTransport::open(path, columns)?),
        })
    }
}

impl FromStr for ScaleAddress {
    type Err = AddressError;

    fn from_str(address: &str) -> Result<ScaleAddress, AddressError> {
        let Parts {
            scheme,
            target,
            params,
        } = split(address, &["baud", "capacity_g"])?;
        let protocol = Protocol::parse(scheme).ok_or_else(|| AddressError::UnknownScheme {
            scheme: scheme.to_string(),
            address: address.to_string(),
        })?;
        let mut out = ScaleAddress {
            protocol,
            path: target.to_string(),
            baud: None,
            capacity: None,
        };
        for (k, v) in params {
            match k {
                "baud" => out.baud = Some(number(address, k, v)?),
                _ => {
                    let grams: i64 = number(address, k, v)?;
                    if grams <= 0 {
                        return Err(AddressError::BadParameter {
                            name: k.to_string(),
                            address: address.to_string(),
                        });
                    }
                    out.capacity = Some(QtyMilli(grams));
                }
            }
        }
        Ok(out)
    }
}

impl ScaleAddress {
    /// The reader configuration for this address (protocol defaults, capacity).
    pub fn config(&self) -> ScaleConfig {
        let mut c = ScaleConfig::new(self.protocol);
        if let Some(capacity) = self.capacity {
            c.capacity = capacity;
        }
        c
    }

    /// Opens the scale's port.
    pub fn open(&self) -> Result<ScaleReader, ScaleError> {
        ScaleReader::open(&self.path, self.baud, self.config())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_addresses() {
        let p = |s: &str| s.parse::<PrinterAddress>();
        assert_eq!(
            p("tcp://192.168.1.50"),
            Ok(PrinterAddress::Tcp {
                host: "192.168.1.50".into(),
                port: 9100
            })
        );
        assert_eq!(
            p("tcp://printer.local:9101"),
            Ok(PrinterAddress::Tcp {
                host: "printer.local".into(),
                port: 9101
            })
        );
        assert_eq!(
            p("serial:///dev/ttyUSB0?baud=19200"),
            Ok(PrinterAddress::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: 19200
            })
        );
        assert_eq!(
            p("usb:///dev/usb/lp0"),
            Ok(PrinterAddress::Usb {
                path: "/dev/usb/lp0".into()
            })
        );
        assert_eq!(
            p("file:///tmp/r.bin").map(|a| a.to_string()),
            Ok("file:///tmp/r.bin".to_string())
        );
        assert_eq!(
            p("folder:///tmp/recibos").map(|a| a.to_string()),
            Ok("folder:///tmp/recibos".to_string())
        );
        assert!(matches!(p("lpt1"), Err(AddressError::NoScheme(_))));
        assert!(matches!(
            p("ipp://x"),
            Err(AddressError::UnknownScheme { .. })
        ));
        assert!(matches!(
            p("tcp://x:99999"),
            Err(AddressError::BadParameter { .. })
        ));
        assert!(matches!(
            p("serial:///dev/ttyS0?baud=fast"),
            Err(AddressError::BadParameter { .. })
        ));
        assert!(matches!(
            p("serial:///dev/ttyS0?speed=1"),
            Err(AddressError::BadParameter { .. })
        ));
        assert!(matches!(
            p("tcp://x?baud=9600"),
            Err(AddressError::BadParameter { .. })
        ));
        assert!(matches!(p("usb://"), Err(AddressError::Empty(_))));
    }

    #[test]
    fn scale_addresses() {
        let a: ScaleAddress = "cas:///dev/ttyUSB1?baud=4800&capacity_g=30000"
            .parse()
            .expect("cas");
        assert_eq!(a.protocol, Protocol::CasPd2);
        assert_eq!(a.baud, Some(4800));
        assert_eq!(a.config().capacity, QtyMilli(30_000));
        let t: ScaleAddress = "toledo:///dev/ttyS0".parse().expect("toledo");
        assert_eq!(
            (t.protocol, t.path.as_str(), t.baud),
            (Protocol::Toledo8217, "/dev/ttyS0", None)
        );
        assert_eq!(t.config().capacity, QtyMilli(15_000));
        assert!("mettler:///dev/ttyS0".parse::<ScaleAddress>().is_err());
        assert!("cas:///dev/x?capacity_g=-1"
            .parse::<ScaleAddress>()
            .is_err());
    }
}
