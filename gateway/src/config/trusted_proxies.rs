//! `[server] trusted_proxies`: the peers whose forwarding headers (`X-Forwarded-Host`,
//! `X-Forwarded-Proto`, `Forwarded`, ...) the gateway believes.

use std::net::IpAddr;

use ipnet::IpNet;
use toml::Spanned;

use super::report::Report;

/// Addresses and networks of the proxies in front of the gateway.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether a request from `peer` may say, in forwarding headers, what its client asked for.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&peer))
    }
}

/// The networks of `entries` (`10.0.0.0/8`, `192.168.1.7`, `fd00::/8`), each bad one reported
/// where it is written.
pub(super) fn trusted_proxies(
    entries: &[Spanned<String>],
    report: &mut Report<'_>,
) -> TrustedProxies {
    let mut networks = Vec::with_capacity(entries.len());
    for entry in entries {
        let text = entry.get_ref().trim();
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => networks.push(net.trunc()),
            Err(_) => report.error(
                entry.span(),
                format!("`{text}` is not an IP address or network"),
                Some("e.g. \"10.0.0.0/8\" or \"192.168.1.7\"".into()),
            ),
        }
    }
    TrustedProxies(networks)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::errors;
    use super::*;

    #[test]
    fn addresses_and_networks_are_trusted_and_nothing_else() {
        let trusted = TrustedProxies(vec![
            "10.0.0.0/8".parse().unwrap(),
            IpNet::from("192.168.1.7".parse::<IpAddr>().unwrap()),
        ]);
        assert!(trusted.trusts("10.1.2.3".parse().unwrap()));
        assert!(trusted.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(trusted.trusts("192.168.1.7".parse().unwrap()));
        assert!(!trusted.trusts("192.168.1.8".parse().unwrap()));
        assert!(!trusted.trusts("127.0.0.1".parse().unwrap()));
        assert!(!TrustedProxies::default().trusts("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_bad_entry_points_at_itself() {
        let source = "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n";
        assert_eq!(
            errors(source),
            ["t.toml:2:34: `10.0.0.0/33` is not an IP address or network"]
        );
    }
}
