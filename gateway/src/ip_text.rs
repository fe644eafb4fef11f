//! Client addresses as text, for `X-Forwarded-For`, the `client.address` span attribute and the
//! audit record.

use std::net::IpAddr;

/// `ip` as `Display` writes it. IPv4 is written digit by digit: std's `Display` goes through the
/// formatting machinery, which costs more than the rest of the address handling, and this runs
/// for every proxied request (docs/benchmarks.md).
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
            out
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn written_as_display_writes_it() {
        for octet in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(octet, 0, 255, octet),
                Ipv4Addr::new(10, octet, 7, 100),
            ] {
                assert_eq!(ip_text(IpAddr::V4(ip)), ip.to_string());
            }
        }
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        assert_eq!(ip_text(IpAddr::V6(v6)), "2001:db8::1");
    }
}
