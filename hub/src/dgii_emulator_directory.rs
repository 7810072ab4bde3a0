//! The emulator's side of DGII that the receiver services need (a child
//! module of `dgii_emulator`): the directory of electronic taxpayers
//! (`/ecf/consultadirectorio/…?RNC=`, entries set by the test with
//! [`Emulator::set_directory`]) and the reception of commercial approvals
//! (`/ecf/aprobacioncomercial/…`), which checks each ACECF as the emulator
//! checks documents (`ACECF.xsd` with `xmllint`, the signature) and counts,
//! per e-NCF, the arrivals and the distinct contents.
//!
//! Source: DGII "Descripción técnica de facturación electrónica" v1.6
//! (the directory lists each electronic receiver's URLs; the buyer sends its
//! ACECF to DGII too). Paths and the directory's JSON shape are guessed (see
//! `taxgw::dgii_http::PATH_DIRECTORY`). Test support only.

use super::*;

/// What the emulator holds for the receiver side.
#[derive(Debug, Default)]
pub(super) struct Directory {
    entries: BTreeMap<String, String>,
    approvals: BTreeMap<String, (u32, BTreeSet<Hash256>)>,
}

pub(super) type Side = Arc<Mutex<Directory>>;

/// The routes.
pub(super) fn routes(state: Shared, side: Side) -> Router {
    Router::new()
        .route(
            "/ecf/consultadirectorio/api/consultas/obtenerdirectorioporrnc",
            get(directory),
        )
        .route(
            "/ecf/aprobacioncomercial/api/aprobacioncomercial",
            post(approval),
        )
        .with_state((state, side))
}

type Both = State<(Shared, Side)>;

async fn directory(State((state, side)): Both, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let rnc = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("RNC="))
        .unwrap_or("")
        .to_owned();
    let url = side.lock().ok().and_then(|d| d.entries.get(&rnc).cloned());
    match url {
        Some(u) => json_response(
            StatusCode::OK,
            &json!([{"nombre": "Contribuyente", "rnc": rnc, "urlRecepcion": u,
                     "urlAceptacion": u, "urlOpcional": u}]),
        ),
        None => json_response(StatusCode::NOT_FOUND, &json!([])),
    }
}

async fn approval(State((state, side)): Both, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(doc) = form_xml(&headers, &body) else {
        return bad_request("xml", "falta el archivo xml");
    };
    if let Err(mensajes) = check(&state, Some(&doc)).await {
        return json_response(StatusCode::BAD_REQUEST, &json!({"mensajes": mensajes}));
    }
    let encf = xml::flatten(&doc)
        .ok()
        .and_then(|f| xml::field(&f, "ACECF/DetalleAprobacionComercial/eNCF").map(str::to_owned));
    let Some(encf) = encf else {
        return bad_request("eNCF", "falta el eNCF");
    };
    if let Ok(mut d) = side.lock() {
        let e = d.approvals.entry(encf.clone()).or_default();
        e.0 += 1;
        e.1.insert(Hash256::of(&doc));
    }
    json_response(StatusCode::OK, &json!({"encf": encf, "estado": "Aceptado"}))
}

impl Emulator {
    /// Lists `rnc` in the directory with its services at `base_url`.
    pub fn set_directory(&self, rnc: &str, base_url: &str) {
        if let Ok(mut d) = self.directory.lock() {
            d.entries.insert(rnc.to_owned(), base_url.to_owned());
        }
    }

    /// ACECF received per e-NCF: (arrivals, distinct contents).
    pub fn approvals(&self) -> BTreeMap<String, (u32, usize)> {
        self.directory
            .lock()
            .map(|d| {
                d.approvals
                    .iter()
                    .map(|(k, (n, c))| (k.clone(), (*n, c.len())))
                    .collect()
            })
            .unwrap_or_default()
    }
}
