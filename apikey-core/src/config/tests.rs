//! Reading configuration from files and the environment.
// figment's `Jail` closures return its large `Error`: not ours to shrink.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use super::*;

/// Loads the configuration from the jail's working directory and environment, on top of a
/// `Rocket.toml` read as Rocket reads it (`default` profile, nested).
fn load(_jail: &figment::Jail) -> Result<ApiKeyConfig, ConfigError> {
    let rocket = Figment::new()
        .select("default")
        .merge(Toml::file("Rocket.toml").nested());
    ApiKeyConfig::from_figment(&layered(rocket, None)?)
}

/// Sets every variable of `vars` in the jail.
fn set_all(jail: &mut figment::Jail, vars: &[(&str, &str)]) {
    for (name, value) in vars {
        jail.set_env(name, value);
    }
}

#[test]
fn defaults_without_any_source() {
    figment::Jail::expect_with(|jail| {
        let c = load(jail).unwrap();
        assert_eq!(c.settings.header, "API-KEY");
        assert_eq!(c.settings.database_url, DEFAULT_DATABASE_URL);
        assert!(c.settings.disable_keys_of_inactive_users);
        assert!(c.sections.is_empty());
        Ok(())
    });
}

#[test]
fn precedence_rocket_then_file_then_env() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "Rocket.toml",
            r#"
            [default.apikey]
            cache_ttl = 5
            header = "X-From-Rocket"
            key_prefix = "rk"
            [default.api_key_my_service]
            key = "from_rocket"
            user = "alice"
            [default.api_key_other]
            key = "other_key"
            user = "bob"
            groups = ["b", "a", "a"]
            "#,
        )?;
        jail.create_file(
            "apikeys.toml",
            r#"
            [apikey]
            cache_ttl = "2m"
            header = "X-From-File"
            [api_key_my_service]
            key = "from_file"
            "#,
        )?;
        set_all(
            jail,
            &[
                ("APIKEY_HEADER", "X-From-Env"),
                ("APIKEY_API_KEY_MY_SERVICE__KEY", "from_env"),
                ("APIKEY_API_KEY_DIGITS__KEY", "12345678"),
                ("APIKEY_API_KEY_DIGITS__USER", "carol"),
                ("APIKEY_TEST_POSTGRES_URL", "postgres://ignored"),
            ],
        );
        let c = load(jail).unwrap();
        assert_eq!(c.settings.header, "X-From-Env");
        assert_eq!(c.settings.cache_ttl, Duration::from_secs(120));
        assert_eq!(c.settings.key_prefix, "rk");
        let names: Vec<_> = c.sections.iter().map(|s| s.tech_name.as_str()).collect();
        assert_eq!(names, ["digits", "my_service", "other"]);
        let my = &c.sections[1];
        assert_eq!(my.key.expose(), "from_env");
        assert_eq!(my.user.as_deref(), Some("alice"));
        assert_eq!(c.sections[0].key.expose(), "12345678");
        assert_eq!(c.sections[2].groups, Some(Groups::new(["a", "b"]).unwrap()));
        Ok(())
    });
}

#[test]
fn apikey_config_names_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("custom.toml", "[api_key_x]\nkey = \"kx\"\nuser = \"u\"\n")?;
        jail.set_env(CONFIG_ENV, "custom.toml");
        let c = load(jail).unwrap();
        assert_eq!(c.sections[0].tech_name, "x");
        assert!(c.sections[0].source_name.contains("custom.toml"));
        jail.set_env(CONFIG_ENV, "missing.toml");
        let e = load(jail).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
        Ok(())
    });
}

#[test]
fn bad_config_names_file_and_section() {
    for (file, section, needle) in [
        ("[apikey]\nbogus = 1\n", "apikey", "bogus"),
        ("[apikey]\ncache_ttl = \"soon\"\n", "apikey", "duration"),
        ("[apikey]\nheader = \"bad header\"\n", "apikey", "header"),
        ("[apikey]\nkey_prefix = \"A_B\"\n", "apikey", "key_prefix"),
        ("[apikey]\nrate_limit = \"fast\"\n", "apikey", "rate_limit"),
        ("[apikey]\nquota = \"lots\"\n", "apikey", "quota"),
        (
            "[apikey]\nlimits_url = \"http://x\"\n",
            "apikey",
            "limits_url",
        ),
        (
            "[apikey]\nlimits_prefix = \"a b\"\n",
            "apikey",
            "limits_prefix",
        ),
        (
            "[api_key_x]\nkey = \"k\"\nquota = \"5/1ms\"\n",
            "api_key_x",
            "quota",
        ),
        (
            "[api_key_x]\nkey = \"k\"\nrate_limit = \"0/1m\"\n",
            "api_key_x",
            "rate_limit",
        ),
        ("[api_key_x]\nuser = \"u\"\n", "api_key_x", "no `key`"),
        ("[api_key_x]\nkey = \"\"\n", "api_key_x", "no `key`"),
        (
            "[api_key_x]\nkey = \"k\"\ncolor = 1\n",
            "api_key_x",
            "color",
        ),
        (
            "[api_key_x]\nkey = \"has space\"\n",
            "api_key_x",
            "not usable",
        ),
        ("[api_key_x]\nkey = \"ak_bad\"\n", "api_key_x", "not usable"),
        (
            "[api_key_My_X]\nkey = \"k\"\n",
            "api_key_My_X",
            "api_key_my_x",
        ),
        (
            "[api_key_a]\nkey = \"same\"\n[api_key_b]\nkey = \"same\"\n",
            "api_key_b",
            "same `key`",
        ),
    ] {
        figment::Jail::expect_with(|jail| {
            jail.create_file("apikeys.toml", file)?;
            let e = load(jail).unwrap_err();
            assert_eq!(e.section, section, "{file}");
            assert!(e.source_name.contains("apikeys.toml"), "{e}");
            let text = e.to_string();
            assert!(text.contains(needle), "{file}: {text}");
            assert!(text.contains("apikeys.toml"), "{text}");
            Ok(())
        });
    }
}

#[test]
fn environment_values_are_taken_verbatim() {
    figment::Jail::expect_with(|jail| {
        set_all(
            jail,
            &[
                ("APIKEY_API_KEY_BOT__KEY", "000000000000000042"),
                ("APIKEY_API_KEY_BOT__USER", "true"),
                ("APIKEY_API_KEY_BOT__GROUPS", "billing, 007 ,"),
                ("APIKEY_API_KEY_FLAG__KEY", "true"),
                ("APIKEY_API_KEY_FLAG__USER", "0042"),
                ("APIKEY_API_KEY_FLAG__GROUPS", "[\"a\", \"b\"]"),
                ("APIKEY_PEPPER", "000123"),
                ("APIKEY_HEADER", "X-Key"),
                ("APIKEY_CACHE_TTL", "30"),
                ("APIKEY_NEGATIVE_CACHE_TTL", "2m"),
                ("APIKEY_DISABLE_KEYS_OF_INACTIVE_USERS", "false"),
                ("APIKEY_ACTOR", "someone"),
                ("APIKEY_LIMITS_URL", "redis://:pw@127.0.0.1:6379/2"),
                ("APIKEY_LIMITS_PREFIX", "svc:prod"),
                ("APIKEY_QUOTA", "500/1d"),
                ("APIKEY_API_KEY_BOT__QUOTA", "10/1h"),
            ],
        );
        let c = load(jail).unwrap();
        let bot = &c.sections[0];
        assert_eq!(bot.key.expose(), "000000000000000042");
        assert_eq!(bot.user.as_deref(), Some("true"));
        assert_eq!(bot.groups, Some(Groups::new(["007", "billing"]).unwrap()));
        let flag = &c.sections[1];
        assert_eq!(flag.key.expose(), "true");
        assert_eq!(flag.user.as_deref(), Some("0042"));
        assert_eq!(flag.groups, Some(Groups::new(["a", "b"]).unwrap()));
        assert_eq!(
            c.settings.pepper.as_ref().map(Secret::expose),
            Some("000123")
        );
        assert_eq!(c.settings.header, "X-Key");
        assert_eq!(c.settings.cache_ttl, Duration::from_secs(30));
        assert_eq!(c.settings.negative_cache_ttl, Duration::from_secs(120));
        assert!(!c.settings.disable_keys_of_inactive_users);
        assert_eq!(
            c.settings.limits_url.as_deref(),
            Some("redis://:pw@127.0.0.1:6379/2")
        );
        assert_eq!(c.settings.limits_prefix, "svc:prod");
        assert_eq!(c.settings.quota, Some("500/1d".parse().unwrap()));
        assert_eq!(bot.quota, Some("10/1h".parse().unwrap()));
        let shown = format!("{:?}", c.settings);
        assert!(!shown.contains("pw@"), "{shown}");
        Ok(())
    });
}

#[test]
fn config_errors_never_repeat_a_value() {
    const SECRET: &str = "s3cr3t-value-never-shown";
    // A forgotten `__KEY`: the variable names a whole section.
    figment::Jail::expect_with(|jail| {
        jail.set_env("APIKEY_API_KEY_MY_SERVICE", SECRET);
        let e = load(jail).unwrap_err().to_string();
        assert!(!e.contains(SECRET), "{e}");
        assert!(e.contains("APIKEY_API_KEY_MY_SERVICE__KEY"), "{e}");
        Ok(())
    });
    for file in [
        format!("[api_key_x]\nkey = [\"{SECRET}\"]\nuser = \"u\"\n"),
        format!("[api_key_x]\nkey = \"k\"\nuser = [\"{SECRET}\"]\n"),
        format!("[api_key_x]\nkey = \"k\"\nrate_limit = \"{SECRET}\"\n"),
        format!("[api_key_x]\nkey = \"has space {SECRET}\"\n"),
        format!("api_key_x = \"{SECRET}\"\n"),
        format!("[apikey]\ncache_ttl = \"{SECRET}\"\n"),
        format!("[apikey]\nheader = \"bad {SECRET}\"\n"),
        format!("[apikey]\nkey_prefix = \"{SECRET}\"\n"),
        format!("[apikey]\nrate_limit = \"{SECRET}\"\n"),
        format!("[apikey]\nquota = \"{SECRET}\"\n"),
        format!("[apikey]\nlimits_url = \"{SECRET}\"\n"),
        format!("[apikey]\npepper = [\"{SECRET}\"]\n"),
        format!("[apikey]\ndisable_keys_of_inactive_users = \"{SECRET}\"\n"),
    ] {
        figment::Jail::expect_with(|jail| {
            jail.create_file("apikeys.toml", &file)?;
            let e = load(jail).unwrap_err();
            let text = e.to_string();
            assert!(!text.contains(SECRET), "{file}: {text}");
            assert!(text.contains("apikeys.toml"), "{text}");
            Ok(())
        });
    }
}

#[test]
fn urls_are_redacted() {
    assert_eq!(
        redact_url("postgres://u:pw@host:5432/db?x=1"),
        "postgres://u:***@host:5432/db?x=1"
    );
    assert_eq!(redact_url("postgres://u@host/db"), "postgres://u@host/db");
    assert_eq!(
        redact_url("sqlite://apikeys.db?mode=rwc"),
        "sqlite://apikeys.db?mode=rwc"
    );
    assert_eq!(redact_url("memory:"), "memory:");
}

/// A password in the query string (libpq's `?password=`, also `sslpassword`) is masked too.
#[test]
fn passwords_in_the_query_are_redacted() {
    assert_eq!(
        redact_url("postgres://host/db?user=u&password=s3cret&sslmode=verify-full"),
        "postgres://host/db?user=u&password=***&sslmode=verify-full"
    );
    assert_eq!(
        redact_url("postgres://u:pw@host/db?PASSWORD=s3cret"),
        "postgres://u:***@host/db?PASSWORD=***"
    );
    assert_eq!(
        redact_url("postgresql:///db?host=/run/pg&sslpassword=k3y"),
        "postgresql:///db?host=/run/pg&sslpassword=***"
    );
    assert_eq!(
        redact_url("rediss://cache:6380/0?password=s3cret#x"),
        "rediss://cache:6380/0?password=***#x"
    );
    let url = "postgres://host/db?password=s3cret";
    let settings = Settings {
        database_url: url.into(),
        feed_url: Some(url.into()),
        limits_url: Some("redis://h/0?password=s3cret".into()),
        ..Settings::default()
    };
    assert!(!format!("{settings:?}").contains("s3cret"));
}

#[test]
fn an_odoo_config_file_works_as_it_is() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "odoo.conf",
            "[options]\n\
             db_host = localhost\n\
             addons_path = /opt/odoo/addons,\n    /opt/extra\n\
             admin_passwd = x\"y;z\n\
             \n\
             ; a comment\n\
             [api_key_from_env]\n\
             key = api_key_from_env\n\
             \n\
             [api_key_robot]\n\
             KEY = \"quoted\";not#a\\comment\n\
             user = robot\n\
             groups = billing, reports ,\n",
        )?;
        jail.set_env(CONFIG_ENV, "odoo.conf");
        let c = load(jail).unwrap();
        let names: Vec<_> = c.sections.iter().map(|s| s.tech_name.as_str()).collect();
        assert_eq!(names, ["from_env", "robot"], "[options] is Odoo's");
        assert_eq!(c.sections[0].key.expose(), "api_key_from_env");
        assert_eq!(c.sections[0].user, None);
        let robot = &c.sections[1];
        assert_eq!(robot.key.expose(), "\"quoted\";not#a\\comment", "verbatim");
        assert_eq!(robot.user.as_deref(), Some("robot"));
        assert_eq!(
            robot.groups,
            Some(Groups::new(["billing", "reports"]).unwrap())
        );
        assert!(
            robot.source_name.contains("odoo.conf"),
            "{}",
            robot.source_name
        );
        // The environment still overrides the file.
        jail.set_env("APIKEY_API_KEY_ROBOT__USER", "other");
        assert_eq!(
            load(jail).unwrap().sections[1].user.as_deref(),
            Some("other")
        );
        Ok(())
    });
}

#[test]
fn a_bad_odoo_config_file_names_the_place_never_a_value() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("bad.cfg", "[api_key_x]\nkey = s3cr3t\n[unclosed\n")?;
        jail.set_env(CONFIG_ENV, "bad.cfg");
        let e = load(jail).unwrap_err().to_string();
        assert!(e.contains("bad.cfg") && e.contains("line "), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        jail.create_file("odd.ini", "[api_key_x]\nkey = s3cr3t\ncolour = blue\n")?;
        jail.set_env(CONFIG_ENV, "odd.ini");
        let e = load(jail).unwrap_err().to_string();
        assert!(e.contains("colour") && e.contains("odd.ini"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        Ok(())
    });
}

/// `admin_cookie_key`: 32 bytes or more, base64 or hex; anything else stops start-up naming
/// the setting, never repeating the value; it never prints.
#[test]
fn the_admin_cookie_key_is_checked_and_never_printed() {
    figment::Jail::expect_with(|jail| {
        let b64 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
        jail.set_env("APIKEY_ADMIN_COOKIE_KEY", b64);
        let c = load(jail).unwrap();
        let bytes = c.settings.admin_cookie_key_bytes().unwrap().unwrap();
        assert_eq!(bytes.len(), 32);
        assert!(!format!("{:?}", c.settings).contains(b64));
        let hex = "ab".repeat(32);
        jail.set_env("APIKEY_ADMIN_COOKIE_KEY", &hex);
        let c = load(jail).unwrap();
        assert_eq!(
            c.settings.admin_cookie_key_bytes().unwrap(),
            Some(vec![0xab; 32])
        );
        for bad in ["short", "c2hvcnQ=", &"ab".repeat(31)] {
            jail.set_env("APIKEY_ADMIN_COOKIE_KEY", bad);
            let e = load(jail).unwrap_err();
            assert!(e.message.contains("admin_cookie_key"), "{e}");
            assert!(!e.to_string().contains(bad), "{e}");
        }
        Ok(())
    });
}

#[test]
fn sections_carry_scopes_and_metadata() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "apikeys.toml",
            r#"
            [api_key_shop]
            key = "a-shop-key"
            user = "shop"
            scopes = ["orders:*", "invoices:read"]
            meta = { plan = "pro", customer = "c-42" }

            [api_key_bad]
            key = "a-bad-key"
            user = "bad"
            "#,
        )?;
        set_all(
            jail,
            &[
                ("APIKEY_API_KEY_ENV__KEY", "an-env-key"),
                ("APIKEY_API_KEY_ENV__USER", "env"),
                ("APIKEY_API_KEY_ENV__SCOPES", "orders:read, reports:*"),
                ("APIKEY_API_KEY_ENV__META", "{plan = \"free\"}"),
            ],
        );
        let c = load(jail).unwrap();
        let find = |tech: &str| c.sections.iter().find(|s| s.tech_name == tech).unwrap();
        let shop = find("shop");
        assert_eq!(
            shop.scopes,
            Some(Scopes::new(["invoices:read", "orders:*"]).unwrap())
        );
        let meta = shop.meta.as_ref().unwrap();
        assert_eq!(meta.get("plan"), Some("pro"));
        assert_eq!(meta.get("customer"), Some("c-42"));
        let env = find("env");
        assert_eq!(
            env.scopes,
            Some(Scopes::new(["orders:read", "reports:*"]).unwrap())
        );
        assert_eq!(env.meta.as_ref().unwrap().get("plan"), Some("free"));
        assert!(find("bad").scopes.is_none() && find("bad").meta.is_none());

        // A bad scope stops start-up naming the section and the field, never the value.
        jail.set_env("APIKEY_API_KEY_ENV__SCOPES", "orders:, secret-scope-value");
        let err = load(jail).unwrap_err().to_string();
        assert!(err.contains("api_key_env"), "{err}");
        assert!(!err.contains("secret-scope-value"), "{err}");
        Ok(())
    });
}
