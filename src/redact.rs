//! Keeping secrets out of text: every error message and `Debug` output that could carry a URL,
//! a connection string or an authorization header goes through [`redact`] first.

/// Replaces the values of secret-bearing fields in free text: `sig=` (SAS signatures, in URLs that
/// reqwest puts into its error messages), `AccountKey=` (connection strings), and the credentials
/// of `SharedKey`/`Bearer` authorization headers.
pub(crate) fn redact(text: &str) -> String {
    const MARKERS: [&str; 5] = [
        "sig=",
        "accountkey=",
        "sharedaccesssignature=",
        "sharedkey ",
        "bearer ",
    ];
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while pos < text.len() {
        let next = MARKERS
            .iter()
            .filter_map(|m| lower[pos..].find(m).map(|i| (pos + i, m.len())))
            .min();
        let Some((at, len)) = next else { break };
        let value_start = at + len;
        let value_end = text[value_start..]
            .find(|c: char| {
                matches!(c, '&' | ';' | '"' | '\'' | '<' | '>' | ')' | ',') || c.is_whitespace()
            })
            .map_or(text.len(), |i| value_start + i);
        out.push_str(&text[pos..value_start]);
        if value_end > value_start {
            out.push_str("REDACTED");
        }
        pos = value_end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_signatures_keys_and_auth_headers() {
        let text = "error sending request for url (http://h/c?sv=2019&sig=abc%2Bdef&se=1): connection refused";
        assert_eq!(
            redact(text),
            "error sending request for url (http://h/c?sv=2019&sig=REDACTED&se=1): connection refused"
        );
        assert_eq!(
            redact("AccountName=a;AccountKey=xyz==;EndpointSuffix=s"),
            "AccountName=a;AccountKey=REDACTED;EndpointSuffix=s"
        );
        assert_eq!(redact("SharedKey acct:c2ln"), "SharedKey REDACTED");
        assert_eq!(
            redact("Authorization: Bearer eyJ0"),
            "Authorization: Bearer REDACTED"
        );
        assert_eq!(redact("SIG=UPPER"), "SIG=REDACTED");
        assert_eq!(redact("nothing secret"), "nothing secret");
        assert_eq!(redact("trailing sig="), "trailing sig=");
        assert_eq!(redact("ünïcödé sig=ä&x"), "ünïcödé sig=REDACTED&x");
    }
}
