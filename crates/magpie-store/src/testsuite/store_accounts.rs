//! Store cases for accounts: users, refresh tokens and settings.

use crate::{RefreshUse, Store, StoreError};
use magpie_core::{
    ClientSettings, DeviceId, Persistence, ResendLevel, Transport, UnreadMode, UserId,
};

fn device(s: &str) -> DeviceId {
    DeviceId::new(s).expect("valid device id")
}

/// Usernames are unique; users are found by name and by id; ids start above
/// the reserved system id 0.
pub async fn users_create_conflict_lookup(s: Store) {
    let accounts = s.accounts();
    let alice = accounts
        .create_user("alice", "h1")
        .await
        .expect("create alice");
    let bob = accounts.create_user("bob", "h2").await.expect("create bob");
    assert!(alice.id.0 > 0 && bob.id.0 > 0, "id 0 is the system user");
    assert_ne!(alice.id, bob.id);
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.password_hash, "h1");

    match accounts.create_user("alice", "other").await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a taken username must be Conflict, got {other:?}"),
    }
    // The failed create changed nothing.
    assert_eq!(
        accounts.user_by_name("alice").await.expect("by name"),
        Some(alice.clone())
    );
    assert_eq!(
        accounts.user_by_id(alice.id).await.expect("by id"),
        Some(alice.clone())
    );
    assert_eq!(accounts.user_by_id(bob.id).await.expect("by id"), Some(bob));
    assert_eq!(accounts.user_by_name("carol").await.expect("by name"), None);
    assert_eq!(
        accounts
            .user_by_id(UserId(alice.id.0 + 1000))
            .await
            .expect("by id"),
        None
    );
}

/// A refresh token is used once (rotation); a second use is a replay that
/// revokes every token of its family, and only its family. A token
/// without a family is revoked alone.
pub async fn refresh_token_is_single_use(s: Store) {
    let accounts = s.accounts();
    let u = accounts.create_user("alice", "h").await.expect("create").id;
    let (phone, laptop) = (device("phone"), device("laptop"));
    // Unexpired: a used token is kept (to recognise its replay) until then.
    const LATER: i64 = 4_000_000_000_000;
    let put = |hash: &'static str, family: &'static str, d: &DeviceId, exp: i64| {
        let (accounts, d) = (s.accounts(), d.clone());
        async move {
            accounts
                .put_refresh(hash, family, u, &d, exp)
                .await
                .expect("put")
        }
    };
    put("tok-1", "fam-a", &phone, LATER + 1).await;
    put("tok-2", "fam-a", &phone, LATER + 2).await;
    put("tok-3", "fam-b", &laptop, LATER + 3).await;
    put("old-1", "", &laptop, LATER + 4).await;
    put("old-2", "", &laptop, LATER + 5).await;
    let fresh = |d: &DeviceId, expires_at| RefreshUse::Fresh {
        user: u,
        device: d.clone(),
        expires_at,
    };
    assert_eq!(
        accounts.use_refresh("tok-1", "fam-a").await.expect("use"),
        fresh(&phone, LATER + 1)
    );
    assert_eq!(
        accounts
            .use_refresh("nope", "fam-a")
            .await
            .expect("unknown"),
        RefreshUse::Unknown
    );
    // The replay: refused, and the family's other token goes with it.
    assert_eq!(
        accounts
            .use_refresh("tok-1", "fam-a")
            .await
            .expect("replay"),
        RefreshUse::Reused {
            user: u,
            device: phone.clone()
        }
    );
    assert_eq!(
        accounts
            .use_refresh("tok-2", "fam-a")
            .await
            .expect("revoked"),
        RefreshUse::Unknown,
        "a replay revokes the whole family"
    );
    // Other families, and tokens without one, are untouched.
    assert_eq!(
        accounts.use_refresh("tok-3", "fam-b").await.expect("use"),
        fresh(&laptop, LATER + 3)
    );
    assert_eq!(
        accounts.use_refresh("old-1", "").await.expect("use"),
        fresh(&laptop, LATER + 4)
    );
    assert!(matches!(
        accounts.use_refresh("old-1", "").await.expect("replay"),
        RefreshUse::Reused { .. }
    ));
    assert_eq!(
        accounts.use_refresh("old-2", "").await.expect("use"),
        fresh(&laptop, LATER + 5),
        "a token without a family is revoked alone"
    );
}

/// Of many concurrent uses of one token, exactly one is fresh.
pub async fn concurrent_refresh_uses_agree(s: Store) {
    let accounts = s.accounts();
    let u = accounts.create_user("alice", "h").await.expect("create").id;
    accounts
        .put_refresh("tok", "fam", u, &device("phone"), 1_000)
        .await
        .expect("put");
    let uses = (0..8).map(|_| {
        let accounts = s.accounts();
        async move { accounts.use_refresh("tok", "fam").await.expect("use") }
    });
    let got = futures_util::future::join_all(uses).await;
    let fresh = got
        .iter()
        .filter(|r| matches!(r, RefreshUse::Fresh { .. }))
        .count();
    assert_eq!(fresh, 1, "{got:?}");
}

/// Device settings win over the user default, which wins over the built-in
/// defaults; writing again replaces.
pub async fn settings_device_overrides_user_default(s: Store) {
    let accounts = s.accounts();
    let u = accounts.create_user("alice", "h").await.expect("create").id;
    let (phone, laptop) = (device("phone"), device("laptop"));
    let default = ClientSettings::default();
    assert_eq!(accounts.get_settings(u, None).await.expect("get"), default);
    assert_eq!(
        accounts.get_settings(u, Some(&phone)).await.expect("get"),
        default
    );

    let user_wide = ClientSettings {
        persistence: Persistence::Days(30),
        unread_mode: UnreadMode::TotalOnly,
        ..default
    };
    accounts
        .put_settings(u, None, &user_wide)
        .await
        .expect("put default");
    let phone_only = ClientSettings {
        transport: Transport::Tcp,
        resend: ResendLevel::High,
        ..default
    };
    accounts
        .put_settings(u, Some(&phone), &phone_only)
        .await
        .expect("put phone");

    assert_eq!(
        accounts.get_settings(u, Some(&phone)).await.expect("get"),
        phone_only
    );
    assert_eq!(
        accounts.get_settings(u, Some(&laptop)).await.expect("get"),
        user_wide,
        "falls back to the user default"
    );
    assert_eq!(
        accounts.get_settings(u, None).await.expect("get"),
        user_wide
    );

    let phone_again = ClientSettings {
        search: true,
        ..phone_only
    };
    accounts
        .put_settings(u, Some(&phone), &phone_again)
        .await
        .expect("replace");
    assert_eq!(
        accounts.get_settings(u, Some(&phone)).await.expect("get"),
        phone_again
    );

    // The devices with settings of their own, by id; not the user default.
    let tablet = device("tablet");
    accounts
        .put_settings(u, Some(&tablet), &user_wide)
        .await
        .expect("put tablet");
    assert_eq!(
        accounts.device_settings(u).await.expect("list"),
        vec![(phone.clone(), phone_again), (tablet, user_wide)]
    );

    // Settings are per user.
    let other = accounts.create_user("bob", "h").await.expect("create").id;
    assert!(
        accounts
            .device_settings(other)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        accounts
            .get_settings(other, Some(&phone))
            .await
            .expect("get"),
        default
    );
}

/// A profile is set whole, replaced whole, and read in batches: users who
/// set none are absent from the answer.
pub async fn profiles_are_set_and_read_in_batches(s: Store) {
    let u = super::users(&s, &["a", "b", "c"]).await;
    let accounts = s.accounts();
    assert!(accounts.profiles(&u).await.expect("none").is_empty());
    let p = |user, name: &str, avatar: &str| crate::ProfileRecord {
        user,
        display_name: name.into(),
        avatar_url: avatar.into(),
    };
    accounts
        .put_profile(&p(u[0], "Alice A.", ""))
        .await
        .expect("put");
    accounts
        .put_profile(&p(u[2], "鲍勃", "https://x.example/c.png"))
        .await
        .expect("put");
    accounts
        .put_profile(&p(u[0], "Alice", "https://x.example/a.png"))
        .await
        .expect("again");
    let mut got = accounts.profiles(&u).await.expect("read");
    got.sort_by_key(|p| p.user);
    assert_eq!(
        got,
        vec![
            p(u[0], "Alice", "https://x.example/a.png"),
            p(u[2], "鲍勃", "https://x.example/c.png")
        ]
    );
}
