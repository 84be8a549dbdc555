//! `tech_name = slugify(name)`, exactly as Odoo's `server_environment` derives section names.

use unicode_normalization::UnicodeNormalization;

/// The tech name of a key name: NFKD to ASCII (other characters dropped), every character that
/// is not an ASCII letter, digit or `-` becomes a space, surrounding white space is trimmed, the
/// result is lowercased, runs of spaces and hyphens become one `-`, and finally `-` becomes `_`.
///
/// ```
/// use apikey_core::key::slugify;
/// assert_eq!(slugify("My Service"), "my_service");
/// assert_eq!(slugify("From Env"), "from_env");
/// assert_eq!(slugify("Café  crème--bis"), "cafe_creme_bis");
/// ```
pub fn slugify(name: &str) -> String {
    let mapped: String = name
        .nfkd()
        .filter(char::is_ascii)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    let mut out = String::with_capacity(mapped.len());
    let mut in_run = false;
    for c in mapped.trim().chars() {
        if c == ' ' || c == '-' {
            if !in_run {
                out.push('_');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn matches_the_odoo_convention() {
        for (name, tech) in [
            ("My Service", "my_service"),
            ("my_service", "my_service"),
            ("From Env", "from_env"),
            ("  padded  ", "padded"),
            ("a__b", "a_b"),
            ("a - b", "a_b"),
            ("-lead", "_lead"),
            ("Ünïcödé", "unicode"),
            ("ＦＵＬＬ", "full"),
            ("日本", ""),
            ("x.y/z", "x_y_z"),
        ] {
            assert_eq!(slugify(name), tech, "{name:?}");
        }
    }
}
