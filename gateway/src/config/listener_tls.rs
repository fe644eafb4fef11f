//! `tls` of `[server]`: the listener's certificate, key and client CAs, loaded and checked.

use toml::Spanned;

use super::report::Report;
use super::schema::{ClientAuthSetting, TlsSection};
use crate::tls::{ClientAuth, ListenerTls, TlsFiles};

/// The TLS material `section` names, loaded; `None` (and its problems in `report`) when it
/// cannot be.
pub(super) fn load(section: &Spanned<TlsSection>, report: &mut Report<'_>) -> Option<ListenerTls> {
    let t = section.get_ref();
    let files = TlsFiles {
        cert: t.cert.get_ref().clone(),
        key: t.key.get_ref().clone(),
        client_ca: t.client_ca.as_ref().map(|ca| ca.get_ref().clone()),
        client_auth: match t.client_auth.as_ref().map(Spanned::get_ref) {
            Some(ClientAuthSetting::Optional) => ClientAuth::Optional,
            _ => ClientAuth::Required,
        },
    };
    if let (Some(client_auth), None) = (&t.client_auth, &t.client_ca) {
        report.error(
            client_auth.span(),
            "client_auth needs client_ca (the CAs that sign client certificates)",
            None,
        );
    }
    match ListenerTls::load(files) {
        Ok(tls) => Some(tls),
        Err(e) => {
            let span = t.span_of(e.field).unwrap_or_else(|| section.span());
            report.error(span, e.message, None);
            None
        }
    }
}
