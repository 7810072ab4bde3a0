//! Another taxpayer, for tests and the certification kit (only with the
//! `testkit` feature): it plays DGII's communication tests against a hub's
//! receiver services — asks a seed, signs it, trades it for a token, sends
//! its own e-CF (an E31 whose buyer is the hub's taxpayer) to URL
//! Recepción and reads the ARECF, and sends ACECF (approving or rejecting
//! e-CF the hub's taxpayer issued) to URL Aprobación Comercial.
//!
//! Source: DGII "Descripción técnica de facturación electrónica" v1.6,
//! "Comunicación Emisor-Receptor" (the paths and the exchange); the seed
//! and documents go as the `xml` field of a multipart form, as to DGII's own
//! services (guessed for the receiver services). Documents are built with
//! `caja_shared::ecf` and signed by the given signer.
//!
//! Invariant: test support, never in a release binary.

use caja_shared::ecf::document::SaleContextEcf;
use caja_shared::ecf::issue::issue_sale;
use caja_shared::ecf::issuer::{Environment, Issuer};
use caja_shared::ecf::xmldsig::{self, Signer};
use caja_shared::kind::SaleCreated;
use caja_shared::localtime::UtcOffset;
use serde_json::json;

use crate::receiver::documents::{self, Approval};
use crate::taxgw::multipart;

/// A taxpayer that is not the hub's.
#[derive(Debug)]
pub struct Partner {
    /// Its RNC.
    pub rnc: String,
    /// Its signer.
    pub signer: Signer,
    http: reqwest::Client,
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Partner {
    /// A partner with RNC `rnc` signing with `signer`.
    pub fn new(rnc: &str, signer: Signer) -> Partner {
        Partner {
            rnc: rnc.to_owned(),
            signer,
            http: reqwest::Client::new(),
        }
    }

    /// Its E31 number `encf` to `buyer_rnc` (RD$1,180.00 with 18 % ITBIS),
    /// signed at `now_ms`.
    pub fn supplier_invoice(&self, encf: &str, buyer_rnc: &str, now_ms: i64) -> Vec<u8> {
        let sale: SaleCreated = serde_json::from_value(json!({
            "sale_id": "019aaf70-dbf4-7000-8000-00000000b001",
            "cashier": "ventas",
            "fiscal": {"series": &encf[..3], "number": encf, "valid_until": "2099-12-31",
                       "buyer_tax_id": buyer_rnc},
            "lines": [{"product": "cement", "name": "Cemento gris 42.5 kg", "qty_milli": 2000,
                       "unit_price": 59000, "tax_bp": 1800, "total": 118000, "tax": 18000}],
            "total": 118000,
            "tax": 18000,
            "payments": [{"method": "card", "amount": 118000, "reference": "77"}],
            "change": 0,
        }))
        .expect("a valid sale");
        let issuer = Issuer::new(
            &self.rnc,
            "Ferretería Proveedora SRL",
            "Av. Duarte 10, Santiago",
            None,
        )
        .expect("a valid issuer");
        let ctx = SaleContextEcf {
            issuer: &issuer,
            environment: Environment::Test,
            offset: UtcOffset::SANTO_DOMINGO,
            issued_ms: now_ms,
            signed_at_ms: now_ms,
            series_valid_until: Some("2099-12-31"),
            deferred_send: false,
            buyer_name: Some("Colmado Cliente SRL"),
        };
        let issued = issue_sale(&sale, &ctx, &self.signer).expect("the E31 signs");
        issued
            .documents
            .into_iter()
            .next()
            .expect("one document")
            .xml
    }

    /// An ACECF of the e-CF `encf` of `issuer_rnc`, signed by this partner
    /// as its buyer.
    #[allow(clippy::too_many_arguments)]
    pub fn approval(
        &self,
        issuer_rnc: &str,
        encf: &str,
        issued_date: &str,
        total_text: &str,
        accepted: bool,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Vec<u8> {
        documents::acecf(
            &Approval {
                issuer_rnc: issuer_rnc.to_owned(),
                encf: encf.to_owned(),
                issued_date: issued_date.to_owned(),
                total_text: total_text.to_owned(),
                buyer_rnc: self.rnc.clone(),
                accepted,
                reason: reason.map(str::to_owned),
                decided_at: documents::dgii_time(now_ms),
            },
            &self.signer,
        )
        .expect("the ACECF signs")
    }

    async fn post_xml(&self, url: &str, token: Option<&str>, xml: &[u8]) -> Answer {
        let (ct, body) = multipart::form("xml", "documento.xml", xml);
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, ct)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("the hub answers");
        Answer {
            status: r.status().as_u16(),
            body: r.bytes().await.expect("a body").to_vec(),
        }
    }

    /// The seed document of the hub at `base`.
    pub async fn seed(&self, base: &str) -> Vec<u8> {
        let r = self
            .http
            .get(format!("{base}/fe/autenticacion/api/semilla"))
            .send()
            .await
            .expect("the hub answers");
        assert_eq!(r.status().as_u16(), 200);
        r.bytes().await.expect("a body").to_vec()
    }

    /// Presents a signed seed: the answer.
    pub async fn validate(&self, base: &str, signed_seed: &[u8]) -> Answer {
        self.post_xml(
            &format!("{base}/fe/autenticacion/api/validacioncertificado"),
            None,
            signed_seed,
        )
        .await
    }

    /// Seed → signed seed → token.
    pub async fn token(&self, base: &str) -> String {
        let seed = self.seed(base).await;
        let signed = xmldsig::sign(&seed, &self.signer).expect("the seed signs");
        let a = self.validate(base, &signed).await;
        assert_eq!(a.status, 200, "{}", a.text());
        let v: serde_json::Value = serde_json::from_slice(&a.body).expect("JSON");
        v["token"].as_str().expect("a token").to_owned()
    }

    /// Sends an e-CF to the hub's URL Recepción.
    pub async fn send_ecf(&self, base: &str, token: Option<&str>, xml: &[u8]) -> Answer {
        self.post_xml(&format!("{base}/fe/recepcion/api/ecf"), token, xml)
            .await
    }

    /// Sends an ACECF to the hub's URL Aprobación Comercial.
    pub async fn send_approval(&self, base: &str, token: Option<&str>, xml: &[u8]) -> Answer {
        self.post_xml(
            &format!("{base}/fe/aprobacioncomercial/api/ecf"),
            token,
            xml,
        )
        .await
    }
}
