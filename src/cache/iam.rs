//! ElastiCache IAM authentication tokens: what the function sends as the password of its IAM-enabled
//! ElastiCache user in `AUTH <user> <token>`, so that the stack holds no secret.
//!
//! A token is a SigV4-presigned `GET https://<cache-name>/?Action=connect&User=<user>` (with
//! `&ResourceType=ServerlessCache` for a serverless cache) for the service `elasticache`, valid
//! [`TOKEN_LIFETIME`] (900 s), with the scheme stripped (ElastiCache's "Authenticating with IAM"). It is
//! signed here with `aws-sigv4`, the SDK's own signer, from the function's credentials: no network call.
//! A token only opens a connection (the connection then lives on, up to ElastiCache's 12 hours,
//! see `valkey::MAX_CONNECTION_AGE`), so [`IamToken`] keeps the last one and signs a new one only when
//! less than [`REFRESH_BEFORE`] of its life is left.

use super::valkey::{TokenError, TokenProvider};
use super::{CacheFuture, Clock, SystemClock};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// The service a token is signed for.
pub const SERVICE: &str = "elasticache";

/// How long ElastiCache accepts a token: 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// A kept token is replaced once less than this is left of its life.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(120);

/// What a token authenticates: which cache, as which user, in which region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The cache's name (not its endpoint): `ServerlessCacheName` or the replication group id.
    pub cache_name: String,
    /// The ElastiCache user (for an IAM-enabled user, its id and name are the same).
    pub user: String,
    pub region: String,
    /// A serverless cache (`ResourceType=ServerlessCache` in the signed request).
    pub serverless: bool,
}

/// The token for `target`, signed with `credentials` at `now`: the presigned URL without its scheme.
pub fn sign_token(
    target: &Target,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<String, TokenError> {
    if target.region.is_empty() {
        return Err(TokenError("no AWS region to sign for".into()));
    }
    let mut url = format!(
        "https://{}/?Action=connect&User={}",
        target.cache_name,
        encode(&target.user)
    );
    if target.serverless {
        url.push_str("&ResourceType=ServerlessCache");
    }
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&target.region)
        .name(SERVICE)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| TokenError(format!("signing parameters: {e}")))?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| TokenError(format!("the request to sign: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| TokenError(format!("signing: {e}")))?
        .into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(url.as_str())
        .body(())
        .map_err(|e| TokenError(format!("the request to sign: {e}")))?;
    instructions.apply_to_request_http1x(&mut request);
    let signed = request.uri().to_string();
    Ok(signed
        .strip_prefix("https://")
        .unwrap_or(&signed)
        .to_owned())
}

/// Percent-encodes a query value (an ElastiCache user id is letters, digits and `-`, but be safe).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs tokens for one cache and user from a credentials provider, keeping the last until it is
/// close to expiring.
pub struct IamToken {
    target: Target,
    /// `None`: the SDK found no credentials; every token is then an error.
    credentials: Option<SharedCredentialsProvider>,
    clock: Arc<dyn Clock>,
    kept: Mutex<Option<(String, i64)>>,
}

impl fmt::Debug for IamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamToken")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl IamToken {
    /// Tokens for `target` from `credentials` (the SDK config's provider), on the system clock.
    pub fn new(target: Target, credentials: Option<SharedCredentialsProvider>) -> Self {
        Self {
            target,
            credentials,
            clock: Arc::new(SystemClock),
            kept: Mutex::new(None),
        }
    }

    /// The same on another clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    async fn current(&self) -> Result<String, TokenError> {
        let now = self.clock.now();
        let mut kept = self.kept.lock().await;
        if let Some((token, signed_at)) = kept.as_ref() {
            let refresh_at = signed_at + (TOKEN_LIFETIME - REFRESH_BEFORE).as_secs() as i64;
            if now < refresh_at {
                return Ok(token.clone());
            }
        }
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| TokenError("no AWS credentials provider".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| TokenError(format!("credentials: {e}")))?;
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
        let token = sign_token(&self.target, &credentials, at)?;
        *kept = Some((token.clone(), now));
        Ok(token)
    }
}

impl TokenProvider for IamToken {
    fn token(&self) -> CacheFuture<'_, Result<String, TokenError>> {
        Box::pin(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ManualClock;
    use std::collections::BTreeMap;

    /// 2025-01-15T10:00:00Z
    const T: i64 = 1_736_935_200;

    fn target() -> Target {
        Target {
            cache_name: "cruddur-cache-prod".into(),
            user: "cruddur-messaging-stream".into(),
            region: "us-east-1".into(),
            serverless: true,
        }
    }

    fn credentials(session: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.map(str::to_owned),
            None,
            "test",
        )
    }

    fn at(seconds: i64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64)
    }

    fn query(token: &str) -> BTreeMap<String, String> {
        let (_, query) = token.split_once('?').expect("a query");
        query
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').expect("name=value");
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }

    #[test]
    fn a_token_is_the_presigned_connect_request_without_its_scheme() {
        let token = sign_token(&target(), &credentials(None), at(T)).unwrap();
        assert!(
            token.starts_with(
                "cruddur-cache-prod/?Action=connect&User=cruddur-messaging-stream&ResourceType=ServerlessCache&"
            ),
            "{token}"
        );
        assert!(!token.contains("://"), "{token}");
        let query = query(&token);
        assert_eq!(query["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            query["X-Amz-Credential"],
            "AKIDEXAMPLE%2F20250115%2Fus-east-1%2Felasticache%2Faws4_request"
        );
        assert_eq!(query["X-Amz-Date"], "20250115T100000Z");
        assert_eq!(query["X-Amz-Expires"], "900");
        assert_eq!(query["X-Amz-SignedHeaders"], "host");
        let signature = &query["X-Amz-Signature"];
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!query.contains_key("X-Amz-Security-Token"));
        assert!(!token.contains("wJalr"), "the secret key never appears");
    }

    /// The same request presigned by botocore (`SigV4QueryAuth(credentials, "elasticache",
    /// "us-east-1", expires=900)` at 2025-01-15T10:00:00Z, as the AWS docs' Python sample signs it),
    /// scheme stripped: an independent signer agrees to the byte, with and without a session token.
    #[test]
    fn a_token_is_what_botocore_signs_for_the_same_request() {
        let prefix = "cruddur-cache-prod/?Action=connect&User=cruddur-messaging-stream\
            &ResourceType=ServerlessCache&X-Amz-Algorithm=AWS4-HMAC-SHA256\
            &X-Amz-Credential=AKIDEXAMPLE%2F20250115%2Fus-east-1%2Felasticache%2Faws4_request\
            &X-Amz-Date=20250115T100000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host";
        assert_eq!(
            sign_token(&target(), &credentials(None), at(T)).unwrap(),
            format!(
                "{prefix}&X-Amz-Signature=\
                52170425820cfc945694bc2bf451f3c4a5f9f21356f59861b316d8b732300c8e"
            )
        );
        let with_session = sign_token(&target(), &credentials(Some("FwoG/zz+session=")), at(T));
        let with_session = with_session.unwrap();
        let botocore = format!(
            "{prefix}&X-Amz-Security-Token=FwoG%2Fzz%2Bsession%3D&X-Amz-Signature=\
            8121a3d37081eb30ba4db920c3dc8993df481058d68d97cbae53cf52602b5b42"
        );
        assert_eq!(query(&with_session), query(&botocore), "{with_session}");
    }

    #[test]
    fn the_signature_depends_on_the_time_the_user_and_the_secret() {
        let base = sign_token(&target(), &credentials(None), at(T)).unwrap();
        assert_eq!(
            base,
            sign_token(&target(), &credentials(None), at(T)).unwrap(),
            "deterministic"
        );
        let signature = |token: &str| query(token)["X-Amz-Signature"].clone();
        let later = sign_token(&target(), &credentials(None), at(T + 1)).unwrap();
        let other_user = Target {
            user: "someone-else".into(),
            ..target()
        };
        let other_user = sign_token(&other_user, &credentials(None), at(T)).unwrap();
        let other_secret = Credentials::new("AKIDEXAMPLE", "another", None, None, "test");
        let other_secret = sign_token(&target(), &other_secret, at(T)).unwrap();
        for other in [&later, &other_user, &other_secret] {
            assert_ne!(signature(&base), signature(other));
        }
    }

    #[test]
    fn a_session_token_is_signed_in_and_a_cluster_has_no_resource_type() {
        let cluster = Target {
            serverless: false,
            ..target()
        };
        let token = sign_token(&cluster, &credentials(Some("FwoG/zz+session=")), at(T)).unwrap();
        assert!(!token.contains("ResourceType"), "{token}");
        let query = query(&token);
        assert_eq!(query["X-Amz-Security-Token"], "FwoG%2Fzz%2Bsession%3D");
    }

    #[tokio::test]
    async fn a_kept_token_is_reused_until_two_minutes_before_it_expires_then_signed_again() {
        let clock = Arc::new(ManualClock::at(T));
        let tokens = IamToken::new(
            target(),
            Some(SharedCredentialsProvider::new(credentials(None))),
        )
        .with_clock(clock.clone());
        let first = tokens.token().await.unwrap();
        assert_eq!(query(&first)["X-Amz-Date"], "20250115T100000Z");
        clock.advance(TOKEN_LIFETIME - REFRESH_BEFORE - Duration::from_secs(1));
        assert_eq!(tokens.token().await.unwrap(), first, "still 121 s to live");
        clock.advance(Duration::from_secs(1));
        let second = tokens.token().await.unwrap();
        assert_ne!(second, first);
        assert_eq!(query(&second)["X-Amz-Date"], "20250115T101300Z");
        assert_eq!(tokens.token().await.unwrap(), second);
    }

    #[derive(Debug)]
    struct NoCredentials;

    impl ProvideCredentials for NoCredentials {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded("none here"),
            ))
        }
    }

    #[tokio::test]
    async fn no_credentials_or_no_region_is_a_token_error() {
        let tokens = IamToken::new(
            target(),
            Some(SharedCredentialsProvider::new(NoCredentials)),
        );
        assert!(tokens.token().await.is_err());
    }
}
