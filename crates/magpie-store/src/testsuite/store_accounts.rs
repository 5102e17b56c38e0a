//! Store cases for accounts: users, refresh tokens and settings.

use crate::{Store, StoreError};
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

/// A refresh token can be taken exactly once (rotation).
pub async fn refresh_token_is_single_use(s: Store) {
    let accounts = s.accounts();
    let u = accounts.create_user("alice", "h").await.expect("create").id;
    let phone = device("phone");
    accounts
        .put_refresh("tok-1", u, &phone, 1_000)
        .await
        .expect("put");
    accounts
        .put_refresh("tok-2", u, &device("laptop"), 2_000)
        .await
        .expect("put");

    assert_eq!(
        accounts.take_refresh("tok-1").await.expect("take"),
        Some((u, phone, 1_000))
    );
    assert_eq!(
        accounts.take_refresh("tok-1").await.expect("take again"),
        None,
        "second use must fail"
    );
    assert_eq!(
        accounts.take_refresh("nope").await.expect("take unknown"),
        None
    );
    // Other tokens are untouched.
    assert_eq!(
        accounts
            .take_refresh("tok-2")
            .await
            .expect("take")
            .map(|t| t.2),
        Some(2_000)
    );
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

    // Settings are per user.
    let other = accounts.create_user("bob", "h").await.expect("create").id;
    assert_eq!(
        accounts
            .get_settings(other, Some(&phone))
            .await
            .expect("get"),
        default
    );
}
