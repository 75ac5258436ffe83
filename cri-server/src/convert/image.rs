//! Image records and credentials between CRI and the runtime.

use corten_cri_api::v1::{AuthConfig, Image, ImageSpec, Int64Value};
use corten_runtime::image::{Credentials, ImageRecord};
use tonic::Status;

/// The CRI view of an image record.
pub fn image(record: &ImageRecord) -> Image {
    let (uid, username) = user(record.user());
    Image {
        id: record.id.to_string(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        size: record.size,
        uid,
        username,
        spec: Some(ImageSpec {
            image: record.id.to_string(),
            ..ImageSpec::default()
        }),
        pinned: false,
    }
}

/// CRI reports the image user as a uid when its user part is numeric,
/// as a name otherwise (the group part is not reported).
fn user(user: Option<&str>) -> (Option<Int64Value>, String) {
    let Some(user) = user else {
        return (None, String::new());
    };
    let name = user.split(':').next().unwrap_or(user);
    match name.parse::<i64>() {
        Ok(value) => (Some(Int64Value { value }), String::new()),
        Err(_) => (None, name.to_string()),
    }
}

/// The credentials of a pull request, if it has any.
pub fn credentials(auth: Option<&AuthConfig>) -> Result<Option<Credentials>, Status> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    if !auth.registry_token.is_empty() {
        return Ok(Some(Credentials::Bearer(auth.registry_token.clone())));
    }
    if !auth.identity_token.is_empty() {
        return Err(Status::invalid_argument(
            "identity tokens (OAuth refresh tokens) are not supported; \
             pass username/password, auth or a registry token",
        ));
    }
    if !auth.username.is_empty() || !auth.password.is_empty() {
        return Ok(Some(Credentials::Basic {
            username: auth.username.clone(),
            password: auth.password.clone(),
        }));
    }
    if !auth.auth.is_empty() {
        return Credentials::from_auth_field(&auth.auth)
            .map(Some)
            .map_err(|e| Status::invalid_argument(e.to_string()));
    }
    Ok(None)
}

/// The image named by a request's spec, which must be there.
pub fn spec_image(spec: Option<&ImageSpec>) -> Result<&str, Status> {
    match spec.map(|s| s.image.trim()) {
        Some(image) if !image.is_empty() => Ok(image),
        _ => Err(Status::invalid_argument(
            "no image given (ImageSpec.image is empty)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_splits_uid_and_name() {
        assert_eq!(user(None), (None, String::new()));
        assert_eq!(
            user(Some("1000")),
            (Some(Int64Value { value: 1000 }), String::new())
        );
        assert_eq!(
            user(Some("1000:50")),
            (Some(Int64Value { value: 1000 }), String::new())
        );
        assert_eq!(user(Some("nobody:nogroup")), (None, "nobody".to_string()));
    }

    #[test]
    fn credentials_from_every_form() {
        let basic = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        assert!(matches!(
            credentials(Some(&basic)),
            Ok(Some(Credentials::Basic { .. }))
        ));
        let auth = AuthConfig {
            auth: "dTpw".into(),
            ..Default::default()
        };
        assert_eq!(
            credentials(Some(&auth)).expect("ok"),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        let token = AuthConfig {
            registry_token: "t".into(),
            ..Default::default()
        };
        assert_eq!(
            credentials(Some(&token)).expect("ok"),
            Some(Credentials::Bearer("t".into()))
        );
        let identity = AuthConfig {
            identity_token: "i".into(),
            ..Default::default()
        };
        assert_eq!(
            credentials(Some(&identity)).expect_err("refused").code(),
            tonic::Code::InvalidArgument
        );
        let bad = AuthConfig {
            auth: "%%%".into(),
            ..Default::default()
        };
        assert_eq!(
            credentials(Some(&bad)).expect_err("refused").code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(credentials(None).expect("ok"), None);
        assert_eq!(credentials(Some(&AuthConfig::default())).expect("ok"), None);
    }
}
