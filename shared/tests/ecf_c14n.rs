//! Canonical XML and signatures from other software: the W3C C14N 1.0
//! examples this module reproduces exactly, and documents signed by an
//! independent signer (`xmlsec1 --sign`) in deliberately different
//! serializations — pretty-printed, single-quoted attributes, extra and
//! prefixed namespace declarations, CRLF, `<x/>`, character references, an
//! XML declaration with an encoding, comments — all verify with Caja's
//! verifier (and with `xmlsec1`), and each one with one byte of content
//! changed is refused.

mod ecf_support;

use caja_shared::ecf::c14n::{self, Algorithm, Context};
use caja_shared::ecf::xmldsig::{self, VerifyError};
use ecf_support::*;

fn canon(doc: &str) -> String {
    c14n::canonical_document(doc.as_bytes()).unwrap()
}

#[test]
fn w3c_c14n_examples() {
    // C14N 1.0 §3.2 (whitespace in document content), without its DTD.
    assert_eq!(
        canon("<doc>\n   <clean>   </clean>\n   <dirty>   A   B   </dirty>\n   <mixed>\n      A\n      <clean>   </clean>\n      B\n      <dirty>   A   B   </dirty>\n      C\n   </mixed>\n</doc>"),
        "<doc>\n   <clean>   </clean>\n   <dirty>   A   B   </dirty>\n   <mixed>\n      A\n      <clean>   </clean>\n      B\n      <dirty>   A   B   </dirty>\n      C\n   </mixed>\n</doc>"
    );
    // §3.3 (start and end tags), without the DTD's default attributes.
    assert_eq!(
        canon("<!-- c --><doc>\n   <e1   />\n   <e2   ></e2>\n   <e3   name = \"elem3\"   id=\"elem3\"   />\n   <e4   name=\"elem4\"   id=\"elem4\"   ></e4>\n   <e5 a:attr=\"out\" b:attr=\"sorted\" attr2=\"all\" attr=\"I'm\"\n      xmlns:b=\"http://www.ietf.org\"\n      xmlns:a=\"http://www.w3.org\"\n      xmlns=\"http://example.org\"/>\n   <e6 xmlns=\"\" xmlns:a=\"http://www.w3.org\">\n      <e7 xmlns=\"http://www.ietf.org\">\n         <e8 xmlns=\"\" xmlns:a=\"http://www.w3.org\">\n            <e9 xmlns=\"\" xmlns:a=\"http://www.ietf.org\"/>\n         </e8>\n      </e7>\n   </e6>\n</doc>"),
        "<doc>\n   <e1></e1>\n   <e2></e2>\n   <e3 id=\"elem3\" name=\"elem3\"></e3>\n   <e4 id=\"elem4\" name=\"elem4\"></e4>\n   <e5 xmlns=\"http://example.org\" xmlns:a=\"http://www.w3.org\" xmlns:b=\"http://www.ietf.org\" attr=\"I'm\" attr2=\"all\" b:attr=\"sorted\" a:attr=\"out\"></e5>\n   <e6 xmlns:a=\"http://www.w3.org\">\n      <e7 xmlns=\"http://www.ietf.org\">\n         <e8 xmlns=\"\">\n            <e9 xmlns:a=\"http://www.ietf.org\"></e9>\n         </e8>\n      </e7>\n   </e6>\n</doc>"
    );
    // §3.4 (character modifications and character references), without
    // the DTD-typed attribute.
    assert_eq!(
        canon("<doc>\n   <text>First line&#x0d;&#10;Second line</text>\n   <value>&#x32;</value>\n   <compute><![CDATA[value>\"0\" && value<\"10\" ?\"valid\":\"error\"]]></compute>\n   <compute expr='value>\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"'>valid</compute>\n   <norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>\n</doc>"),
        "<doc>\n   <text>First line&#xD;\nSecond line</text>\n   <value>2</value>\n   <compute>value&gt;\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"</compute>\n   <compute expr=\"value>&quot;0&quot; &amp;&amp; value&lt;&quot;10&quot; ?&quot;valid&quot;:&quot;error&quot;\">valid</compute>\n   <norm attr=\" '    &#xD;&#xA;&#x9;   ' \"></norm>\n</doc>"
    );
    // §3.6 (UTF-8 encoding).
    assert_eq!(
        canon("<?xml version=\"1.0\" encoding=\"utf-8\"?><doc>&#169;</doc>"),
        "<doc>\u{a9}</doc>"
    );
    // CRLF in text and attributes, comments and the declaration dropped.
    assert_eq!(
        canon("<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\r\n<a b='x\r\ny'>1\r\n2<!--c--></a>\r\n"),
        "<a b=\"x y\">1\n2</a>"
    );
    // A PI inside the root is kept.
    assert_eq!(canon("<a><?pi  data ?></a>"), "<a><?pi data ?></a>");
}

#[test]
fn subsets_inherit_namespaces_and_exclusive_writes_only_used_ones() {
    // §3.7-like: a subtree apex gets the namespaces in scope (inclusive),
    // only the ones it uses (exclusive), and xml: attributes (inclusive).
    let root = c14n::parse(
        b"<r xmlns=\"urn:d\" xmlns:u=\"urn:u\" xml:lang=\"es\"><s xmlns:v=\"urn:v\"><t u:a=\"1\"/></s></r>",
    )
    .unwrap();
    let s = root.elems().next().unwrap();
    let ctx = Context::default().below(&root);
    assert_eq!(
        c14n::canonicalize(s, &ctx, Algorithm::Inclusive, &|_| false),
        "<s xmlns=\"urn:d\" xmlns:u=\"urn:u\" xmlns:v=\"urn:v\" xml:lang=\"es\"><t u:a=\"1\"></t></s>"
    );
    assert_eq!(
        c14n::canonicalize(s, &ctx, Algorithm::Exclusive, &|_| false),
        "<s xmlns=\"urn:d\"><t xmlns:u=\"urn:u\" u:a=\"1\"></t></s>"
    );
    // Refused, not guessed.
    for bad in [
        &b"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>"[..],
        b"<a>&nope;</a>",
        b"<p:a/>",
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
        b"<a><b></a>",
        b"<a/><b/>",
        b"<a x=\"1\" x=\"2\"/>",
    ] {
        assert!(
            c14n::parse(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

const NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// A signature template in the default namespace (pretty-printed).
fn template_default() -> String {
    format!(
        "<Signature xmlns=\"{NS}\">\n  <SignedInfo>\n    <CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>\n    <SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\n    <Reference URI=\"\">\n      <Transforms>\n        <Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\n      </Transforms>\n      <DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\n      <DigestValue/>\n    </Reference>\n  </SignedInfo>\n  <SignatureValue/>\n  <KeyInfo>\n    <X509Data>\n      <X509Certificate/>\n    </X509Data>\n  </KeyInfo>\n</Signature>"
    )
}

/// A `ds:`-prefixed template with a superfluous redeclaration, exclusive
/// C14N for SignedInfo and an explicit inclusive C14N transform.
fn template_prefixed(exclusive: bool) -> String {
    let cm = if exclusive {
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    } else {
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    };
    format!(
        "<ds:Signature xmlns:ds='{NS}'><ds:SignedInfo xmlns:ds='{NS}'><ds:CanonicalizationMethod Algorithm='{cm}'/><ds:SignatureMethod Algorithm='http://www.w3.org/2001/04/xmldsig-more#rsa-sha256'/><ds:Reference URI=''><ds:Transforms><ds:Transform Algorithm='http://www.w3.org/2000/09/xmldsig#enveloped-signature'/><ds:Transform Algorithm='http://www.w3.org/TR/2001/REC-xml-c14n-20010315'/></ds:Transforms><ds:DigestMethod Algorithm='http://www.w3.org/2001/04/xmlenc#sha256'/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>"
    )
}

/// A supplier's e-CF body (not Caja's serialization): pretty-printed, with
/// namespace declarations on the root, a character reference, an empty
/// element and CRLF line ends when `crlf`.
fn supplier_document(signature: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ECF xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\n  <Encabezado>\n    <Version>1.0</Version>\n    <IdDoc>\n      <TipoeCF>31</TipoeCF>\n      <eNCF>E310000000007</eNCF>\n    </IdDoc>\n    <Emisor>\n      <RNCEmisor>101672919</RNCEmisor>\n      <RazonSocialEmisor>Distribuidora Pe&#xF1;a &amp; Hijos, S.R.L.</RazonSocialEmisor>\n      <FechaEmision>01-12-2026</FechaEmision>\n    </Emisor>\n    <Comprador>\n      <RNCComprador>131880738</RNCComprador>\n      <RazonSocialComprador>Colmado Caf\u{e9}</RazonSocialComprador>\n    </Comprador>\n    <Totales>\n      <MontoTotal>1180.00</MontoTotal>\n    </Totales>\n  </Encabezado>\n  <InformacionReferencia xsi:nil=\"true\"/>\n  <FechaHoraFirma>01-12-2026 10:11:12</FechaHoraFirma>\n  {signature}\n</ECF>\n"
    )
}

/// Infoset-preserving rewrites of a signed document's bytes.
fn rewrites(signed: &str) -> Vec<(&'static str, String)> {
    // Every attribute single-quoted (no value here holds an apostrophe).
    let mut single = String::new();
    let mut in_tag = false;
    for c in signed.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ => {}
        }
        single.push(if in_tag && c == '"' { '\'' } else { c });
    }
    // Every `<x .../>` as `<x ...></x>`.
    let mut expanded = String::new();
    let mut rest = signed;
    while let Some(i) = rest.find("/>") {
        let open = rest[..i].rfind('<').unwrap();
        let name: String = rest[open + 1..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/' && *c != '>')
            .collect();
        expanded.push_str(&rest[..i]);
        expanded.push_str(&format!("></{name}>"));
        rest = &rest[i + 2..];
    }
    expanded.push_str(rest);
    let body_start = signed.find("<ECF").unwrap();
    vec![
        ("as signed", signed.to_owned()),
        ("single quotes", single),
        ("expanded empty elements", expanded),
        ("CRLF", signed.replace('\n', "\r\n")),
        (
            "character references",
            signed
                .replace('\u{e9}', "&#233;")
                .replace('\u{f1}', "&#xf1;")
                .replace("1180.00", "&#49;180.00"),
        ),
        (
            "another declaration",
            format!(
                "<?xml version='1.0' encoding='utf-8' standalone='yes'?>\r\n<!-- from the supplier -->{}",
                &signed[body_start..]
            ),
        ),
        (
            "no declaration, spaces in tags, a comment",
            signed[body_start..]
                .replace("<Version>", "<Version ><!-- v -->")
                .replace("</ECF>", "</ECF   >"),
        ),
        (
            "a CDATA section",
            signed.replace("01-12-2026 10:11:12", "<![CDATA[01-12-2026 10:11:12]]>"),
        ),
    ]
}

#[test]
fn documents_signed_by_xmlsec1_in_other_serializations_verify_and_tampering_fails() {
    let Some(()) = tools() else { return };
    let pki = Pki::new("Proveedor Prueba");
    let templates = [
        ("default", template_default()),
        ("prefixed", template_prefixed(false)),
        ("prefixed exclusive", template_prefixed(true)),
    ];
    let mut checked = 0;
    for (tname, sig) in templates {
        let template = supplier_document(&sig);
        let signed = pki.xmlsec_sign(
            &format!("{}.xml", tname.replace(' ', "-")),
            template.as_bytes(),
        );
        for (vname, doc) in rewrites(&signed) {
            let label = format!("{tname} / {vname}");
            // The independent verifier agrees the rewrite is the same XML.
            if let Err(e) = pki.xmlsec_verify("v.xml", doc.as_bytes(), None) {
                panic!("xmlsec1 refuses {label}: {e}\n{doc}");
            }
            let v =
                xmldsig::verify(doc.as_bytes()).unwrap_or_else(|e| panic!("{label}: {e}\n{doc}"));
            assert_eq!(v.certificate_der, pki.cert_der, "{label}");
            assert_eq!(v.root, "ECF");
            // One byte of content changed: refused.
            let tampered = doc.replacen("E310000000007", "E310000000008", 1);
            assert_ne!(tampered, doc);
            assert_eq!(
                xmldsig::verify(tampered.as_bytes()),
                Err(VerifyError::Digest),
                "{label} tampered"
            );
            let tampered = doc.replacen("Colmado", "ColmadO", 1);
            assert_eq!(
                xmldsig::verify(tampered.as_bytes()),
                Err(VerifyError::Digest),
                "{label} tampered text"
            );
            // A changed SignedInfo (still the profile): the signature fails.
            let si = doc.replacen("URI=", "Id=\"x\" URI=", 1);
            assert_eq!(
                xmldsig::verify(si.as_bytes()),
                Err(VerifyError::Signature),
                "{label} SignedInfo changed"
            );
            // A changed namespace declaration on the root changes the
            // canonical document under inclusive C14N.
            let ns = doc.replacen("XMLSchema\"", "XMLSchemaX\"", 1).replacen(
                "XMLSchema'",
                "XMLSchemaX'",
                1,
            );
            assert!(xmldsig::verify(ns.as_bytes()).is_err(), "{label} namespace");
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
}
