//! The app's writes, as the Cruddur backend does them: a new message in a group (Pattern C), and a
//! new conversation (both group rows and the first message in one transaction).
//!
//! Moving the other participants' group rows (Pattern D) is the function's job, triggered by the
//! stream; nothing here touches an existing group row. The user directory lives outside this
//! table, so a user is an id with a display name and a handle: given by the caller, found in the
//! group's own rows ([`sender_names`]), or one of the seed's users (whose handles are shortcuts).
//! A sender is whoever the group's rows name ([`participants`]), whatever the form of their id
//! (uuid, ULID, Cognito sub...); anyone else is refused, as a typo would be.

use super::seed::{User, USERS};
use crate::output::LocalError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use messaging_stream::model::{
    group_pk, message_pk, GROUP_ATTR, GROUP_PK_PREFIX, MESSAGE_ATTR, MESSAGE_UUID_ATTR, PK_ATTR,
    SK_ATTR, USER_DISPLAY_NAME_ATTR, USER_HANDLE_ATTR, USER_UUID_ATTR,
};
use messaging_stream::plan::Item;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("unknown user {who:?}: give a user's uuid, or a seed user's handle ({known})")]
    UnknownUser { who: String, known: String },
    #[error("{handle} has no conversation {group} (no {}{user} row for it): start one with `ddb new-conversation`", GROUP_PK_PREFIX)]
    NotAMember {
        handle: String,
        user: String,
        group: String,
    },
    #[error("a conversation needs two different users")]
    SameUser,
    #[error("user {user} is not a seed user and {found}: give {flags}")]
    NoNames {
        user: String,
        found: &'static str,
        flags: &'static str,
    },
    #[error("--at {at:?} is not a timestamp: give an ISO 8601 instant, e.g. 2026-01-15T10:00:00+00:00 or 2026-01-15T10:00:00.123456")]
    BadTimestamp { at: String },
    #[error("group {group} already has a message at {at}: give another --at")]
    Taken { group: String, at: String },
    #[error("{who:?} is not a participant of group {group}: its rows name {participants}; give one of them to --from")]
    NotAParticipant {
        who: String,
        group: String,
        participants: String,
    },
    #[error("group {group} has no rows in table {table} (read through index {index}): check --group, or start a conversation with `ddb new-conversation`")]
    NoSuchGroup {
        group: String,
        table: String,
        index: String,
    },
    #[error("cannot read the message text from {from}: {reason}")]
    Text { from: String, reason: String },
    #[error("no message text: give TEXT, --text or --text-file")]
    NoText,
    #[error(transparent)]
    Request(#[from] LocalError),
}

/// A seed user by uuid or handle.
pub fn user(who: &str) -> Result<User, WriteError> {
    USERS
        .iter()
        .find(|u| u.uuid == who || u.handle == who)
        .copied()
        .ok_or_else(|| unknown(who))
}

fn unknown(who: &str) -> WriteError {
    WriteError::UnknownUser {
        who: who.to_owned(),
        known: USERS
            .iter()
            .map(|u| u.handle)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A participant of a conversation, as the table describes one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Participant {
    pub uuid: String,
    pub handle: String,
    pub display_name: String,
}

impl From<&User> for Participant {
    fn from(user: &User) -> Self {
        Self {
            uuid: user.uuid.to_owned(),
            handle: user.handle.to_owned(),
            display_name: user.display_name.to_owned(),
        }
    }
}

impl From<User> for Participant {
    fn from(user: User) -> Self {
        Self::from(&user)
    }
}

/// A user as given on the command line: a uuid (any) or a seed user's handle, with the names the
/// caller gave. A seed user's names fill what was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub uuid: String,
    pub display_name: Option<String>,
    pub handle: Option<String>,
}

impl Who {
    /// `who` is a uuid or a seed handle; anything else is refused (a typo is not a new user).
    pub fn parse(
        who: &str,
        display_name: Option<String>,
        handle: Option<String>,
    ) -> Result<Self, WriteError> {
        if let Ok(seed) = user(who) {
            return Ok(Self {
                uuid: seed.uuid.to_owned(),
                display_name: display_name.or_else(|| Some(seed.display_name.to_owned())),
                handle: handle.or_else(|| Some(seed.handle.to_owned())),
            });
        }
        match uuid::Uuid::parse_str(who) {
            Ok(_) => Ok(Self {
                uuid: who.to_owned(),
                display_name,
                handle,
            }),
            Err(_) => Err(unknown(who)),
        }
    }

    /// The participant, if both names are known.
    pub fn complete(&self) -> Option<Participant> {
        Some(Participant {
            uuid: self.uuid.clone(),
            display_name: self.display_name.clone()?,
            handle: self.handle.clone()?,
        })
    }

    /// The participant, or an error naming the flags that would complete it.
    pub fn require(&self, flags: &'static str) -> Result<Participant, WriteError> {
        self.complete().ok_or_else(|| WriteError::NoNames {
            user: self.uuid.clone(),
            found: "has no name here",
            flags,
        })
    }
}

/// What a write created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub message_group_uuid: String,
    pub message_uuid: String,
    /// The message's sort key: now, in UTC with an explicit offset.
    pub created_at: String,
}

/// Now, as Cruddur writes it (`datetime.now(timezone.utc).isoformat()`).
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn message_item(
    group: &str,
    created_at: &str,
    message_uuid: &str,
    from: &Participant,
    text: &str,
) -> Item {
    Item::from([
        (PK_ATTR.to_owned(), s(&message_pk(group))),
        (SK_ATTR.to_owned(), s(created_at)),
        (MESSAGE_UUID_ATTR.to_owned(), s(message_uuid)),
        (MESSAGE_ATTR.to_owned(), s(text)),
        (USER_UUID_ATTR.to_owned(), s(&from.uuid)),
        (USER_DISPLAY_NAME_ATTR.to_owned(), s(&from.display_name)),
        (USER_HANDLE_ATTR.to_owned(), s(&from.handle)),
    ])
}

fn group_row(
    owner: &Participant,
    other: &Participant,
    group: &str,
    created_at: &str,
    text: &str,
) -> Item {
    Item::from([
        (PK_ATTR.to_owned(), s(&group_pk(&owner.uuid))),
        (SK_ATTR.to_owned(), s(created_at)),
        (GROUP_ATTR.to_owned(), s(group)),
        (MESSAGE_ATTR.to_owned(), s(text)),
        (USER_UUID_ATTR.to_owned(), s(&other.uuid)),
        (USER_DISPLAY_NAME_ATTR.to_owned(), s(&other.display_name)),
        (USER_HANDLE_ATTR.to_owned(), s(&other.handle)),
    ])
}

/// Pattern C: `from` writes `text` to `group`, of which they must be a member, now.
pub async fn send(
    client: &Client,
    table: &str,
    group: &str,
    from: impl Into<Participant>,
    text: &str,
) -> Result<Written, WriteError> {
    send_at(client, table, group, &from.into(), text, None).await
}

/// Pattern C at a given instant (`at`, any ISO form the function accepts, written as given), or now,
/// by `from`, who must own a row of the group.
pub async fn send_at(
    client: &Client,
    table: &str,
    group: &str,
    from: &Participant,
    text: &str,
    at: Option<&str>,
) -> Result<Written, WriteError> {
    check_at(at)?;
    if !is_member(client, table, &from.uuid, group).await? {
        return Err(WriteError::NotAMember {
            handle: from.handle.clone(),
            user: from.uuid.clone(),
            group: group.to_owned(),
        });
    }
    put_message(client, table, group, from, text, at).await
}

fn check_at(at: Option<&str>) -> Result<(), WriteError> {
    match at {
        Some(at) if messaging_stream::timestamp::parse_instant(at).is_none() => {
            Err(WriteError::BadTimestamp { at: at.to_owned() })
        }
        _ => Ok(()),
    }
}

/// The message item, never over an existing one.
async fn put_message(
    client: &Client,
    table: &str,
    group: &str,
    from: &Participant,
    text: &str,
    at: Option<&str>,
) -> Result<Written, WriteError> {
    let written = Written {
        message_group_uuid: group.to_owned(),
        message_uuid: uuid::Uuid::new_v4().to_string(),
        created_at: at.map_or_else(now, str::to_owned),
    };
    let result = client
        .put_item()
        .table_name(table)
        .set_item(Some(message_item(
            group,
            &written.created_at,
            &written.message_uuid,
            from,
            text,
        )))
        // Two messages in one group in the same microsecond would share a key: never overwrite.
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(written),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Err(WriteError::Taken {
                group: group.to_owned(),
                at: written.created_at,
            })
        }
        Err(error) => Err(LocalError::sdk("PutItem", error).on(table).into()),
    }
}

/// Where `ddb send` takes the message text from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSource {
    /// As given (the positional argument, or `--text`).
    Literal(String),
    /// Standard input (`-`).
    Stdin,
    /// A file (`--text-file`).
    File(PathBuf),
}

impl TextSource {
    /// The one source `ddb send`'s flags give: the positional TEXT, `--text`, or `--text-file`
    /// (clap lets only one through).
    pub fn from_flags(
        text: Option<String>,
        text_flag: Option<String>,
        text_file: Option<PathBuf>,
    ) -> Result<Self, WriteError> {
        match (text, text_flag, text_file) {
            (Some(text), _, _) => Ok(Self::argument(text)),
            (None, Some(text), _) => Ok(Self::Literal(text)),
            (None, None, Some(path)) => Ok(Self::File(path)),
            (None, None, None) => Err(WriteError::NoText),
        }
    }

    /// The positional argument: `-` is standard input, anything else the text itself. (`@file` is
    /// not special: `--text-file` reads a file.)
    pub fn argument(text: String) -> Self {
        if text == "-" {
            Self::Stdin
        } else {
            Self::Literal(text)
        }
    }

    /// The text, read from `stdin` for [`TextSource::Stdin`]. From a file or stdin it must be
    /// UTF-8, and one final line break (`\n` or `\r\n`, as `echo` and editors add) is dropped.
    pub fn read(self, stdin: impl Read) -> Result<String, WriteError> {
        let (from, bytes) = match self {
            Self::Literal(text) => return Ok(text),
            Self::Stdin => ("standard input".to_owned(), read_all(stdin)),
            Self::File(path) => (path.display().to_string(), std::fs::read(&path)),
        };
        let bytes = bytes.map_err(|error| WriteError::Text {
            from: from.clone(),
            reason: error.to_string(),
        })?;
        let mut text = String::from_utf8(bytes).map_err(|error| WriteError::Text {
            from,
            reason: format!(
                "not UTF-8 (byte {} is not part of a UTF-8 character)",
                error.utf8_error().valid_up_to()
            ),
        })?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Ok(text)
    }
}

fn read_all(mut input: impl Read) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Everyone a group's rows name, by id: each row's owner (`GRP#<id>`) and each row's other
/// participant (`user_uuid`), with the names that row gives them (an owner's own row describes
/// the other participant, so an owner named nowhere else has none).
pub type Participants = BTreeMap<String, Option<(String, String)>>;

/// The participants of `group`, read from the group index (every page).
pub async fn participants(
    client: &Client,
    table: &str,
    index: &str,
    group: &str,
) -> Result<Participants, LocalError> {
    let mut found = Participants::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression(format!("{GROUP_ATTR} = :g"))
            .expression_attribute_values(":g", s(group))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| LocalError::sdk("Query", e).on(table))?;
        for row in page.items() {
            let text = |name: &str| row.get(name).and_then(|v| v.as_s().ok()).cloned();
            if let Some(owner) =
                text(PK_ATTR).and_then(|pk| pk.strip_prefix(GROUP_PK_PREFIX).map(str::to_owned))
            {
                found.entry(owner).or_default();
            }
            if let Some(other) = text(USER_UUID_ATTR) {
                let names = text(USER_DISPLAY_NAME_ATTR).zip(text(USER_HANDLE_ATTR));
                let entry = found.entry(other).or_default();
                if entry.is_none() {
                    *entry = names;
                }
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(found);
        }
    }
}

/// `a (@ann), b`: the participants as an error message lists them.
fn list(participants: &Participants) -> String {
    participants
        .iter()
        .map(|(id, names)| match names {
            Some((_, handle)) => format!("{id} (@{handle})"),
            None => id.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pattern C from the command line: `from` (any id the group's rows name, or a seed user's handle
/// whose uuid they name) writes `text` to `group`, at `at` or now. The sender's names are `name`
/// and `handle` where given, else as the group's rows or the sender's earlier messages describe
/// them (a seed user's own otherwise).
#[allow(clippy::too_many_arguments)]
pub async fn send_from(
    client: &Client,
    table: &str,
    index: &str,
    group: &str,
    from: &str,
    name: Option<String>,
    handle: Option<String>,
    text: &str,
    at: Option<&str>,
) -> Result<Written, WriteError> {
    check_at(at)?;
    let named = participants(client, table, index, group).await?;
    let seed = user(from).ok();
    // The id as given first: a team's id that happens to equal a seed handle is still theirs.
    let mut candidates = vec![from.to_owned()];
    candidates.extend(seed.map(|u| u.uuid.to_owned()));
    let mut id = candidates.iter().find(|c| named.contains_key(*c)).cloned();
    if id.is_none() {
        // The index may not show a conversation created a moment ago: the owner's own row decides.
        for candidate in &candidates {
            if is_member(client, table, candidate, group).await? {
                id = Some(candidate.clone());
                break;
            }
        }
    }
    let Some(id) = id else {
        return Err(if named.is_empty() {
            WriteError::NoSuchGroup {
                group: group.to_owned(),
                table: table.to_owned(),
                index: index.to_owned(),
            }
        } else {
            WriteError::NotAParticipant {
                who: from.to_owned(),
                group: group.to_owned(),
                participants: list(&named),
            }
        });
    };
    let seed = seed.filter(|u| u.uuid == id);
    let known = match (named.get(&id).cloned().flatten(), seed) {
        (Some(names), _) => Some(names),
        (None, Some(u)) => Some((u.display_name.to_owned(), u.handle.to_owned())),
        (None, None) if name.is_some() && handle.is_some() => None,
        (None, None) => sender_names(client, table, index, group, &id).await?,
    };
    let (display_name, found_handle) = match (name, handle, known) {
        (Some(name), Some(handle), _) => (name, handle),
        (name, handle, Some((known_name, known_handle))) => {
            (name.unwrap_or(known_name), handle.unwrap_or(known_handle))
        }
        (_, _, None) => {
            return Err(WriteError::NoNames {
                user: id,
                found: "no row or message of this group describes them",
                flags: "--name and --handle",
            })
        }
    };
    let sender = Participant {
        uuid: id,
        display_name,
        handle: found_handle,
    };
    put_message(client, table, group, &sender, text, at).await
}

/// How the group's rows describe `user`: the other participants' rows carry the user's display
/// name and handle (read from the group index), or else the user's earlier messages in the group.
pub async fn sender_names(
    client: &Client,
    table: &str,
    index: &str,
    group: &str,
    user: &str,
) -> Result<Option<(String, String)>, LocalError> {
    let names = |item: &Item| {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Some((text(USER_DISPLAY_NAME_ATTR)?, text(USER_HANDLE_ATTR)?))
    };
    for (index, key, pk) in [
        (Some(index), GROUP_ATTR, group.to_owned()),
        (None, PK_ATTR, message_pk(group)),
    ] {
        let mut start = None;
        loop {
            let page = client
                .query()
                .table_name(table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression("#k = :k")
                .filter_expression(format!("{USER_UUID_ATTR} = :u"))
                .expression_attribute_names("#k", key)
                .expression_attribute_values(":k", s(&pk))
                .expression_attribute_values(":u", s(user))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| LocalError::sdk("Query", e).on(table))?;
            if let Some(found) = page.items().iter().find_map(names) {
                return Ok(Some(found));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
    }
    Ok(None)
}

/// A new direct conversation: `from`'s and `to`'s group rows and the first message, all or nothing.
pub async fn new_conversation(
    client: &Client,
    table: &str,
    from: impl Into<Participant>,
    to: impl Into<Participant>,
    text: &str,
) -> Result<Written, WriteError> {
    let (from, to) = (&from.into(), &to.into());
    if from.uuid == to.uuid {
        return Err(WriteError::SameUser);
    }
    let written = Written {
        message_group_uuid: uuid::Uuid::new_v4().to_string(),
        message_uuid: uuid::Uuid::new_v4().to_string(),
        created_at: now(),
    };
    let group = &written.message_group_uuid;
    let at = &written.created_at;
    let items = [
        group_row(from, to, group, at, text),
        group_row(to, from, group, at, text),
        message_item(group, at, &written.message_uuid, from, text),
    ];
    let puts = items.into_iter().map(|item| {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    });
    client
        .transact_write_items()
        .set_transact_items(Some(puts.collect()))
        .send()
        .await
        .map_err(|e| LocalError::sdk("TransactWriteItems", e).on(table))?;
    Ok(written)
}

/// Whether `user` has a group row for `group` (read consistently, every page of their list).
async fn is_member(
    client: &Client,
    table: &str,
    user: &str,
    group: &str,
) -> Result<bool, LocalError> {
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .consistent_read(true)
            .key_condition_expression(format!("{PK_ATTR} = :pk"))
            .filter_expression(format!("{GROUP_ATTR} = :g"))
            .expression_attribute_values(":pk", s(&group_pk(user)))
            .expression_attribute_values(":g", s(group))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| LocalError::sdk("Query", e).on(table))?;
        if page.count() > 0 {
            return Ok(true);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_comes_from_its_one_flag_and_a_dash_argument_is_stdin() {
        let from = |text: Option<&str>, flag: Option<&str>, file: Option<&str>| {
            TextSource::from_flags(
                text.map(str::to_owned),
                flag.map(str::to_owned),
                file.map(PathBuf::from),
            )
        };
        assert_eq!(from(Some("-"), None, None).unwrap(), TextSource::Stdin);
        assert_eq!(
            from(None, Some("-"), None).unwrap(),
            TextSource::Literal("-".into())
        );
        assert_eq!(
            from(None, None, Some("t.txt")).unwrap(),
            TextSource::File("t.txt".into())
        );
        assert!(matches!(from(None, None, None), Err(WriteError::NoText)));
    }

    #[test]
    fn users_by_uuid_or_handle() {
        assert_eq!(user("londo").unwrap(), super::super::seed::LONDO);
        assert_eq!(
            user(super::super::seed::ANDREW.uuid).unwrap().handle,
            "andrewbrown"
        );
        let error = user("nobody").unwrap_err().to_string();
        assert!(
            error.contains("nobody") && error.contains("bayko"),
            "{error}"
        );
    }

    #[test]
    fn any_uuid_is_a_user_and_a_typo_is_not() {
        let uuid = "11111111-2222-4333-8444-555555555555";
        let who = Who::parse(uuid, Some("Ann".into()), None).unwrap();
        assert_eq!(who.uuid, uuid);
        assert!(who.complete().is_none(), "no handle given");
        let error = who.require("--name and --handle").unwrap_err().to_string();
        assert!(
            error.contains(uuid) && error.contains("--handle"),
            "{error}"
        );
        let seed = Who::parse("londo", None, Some("lm".into())).unwrap();
        assert_eq!(
            seed.complete().unwrap(),
            Participant {
                uuid: super::super::seed::LONDO.uuid.into(),
                handle: "lm".into(),
                display_name: "Londo Mollari".into(),
            }
        );
        assert!(matches!(
            Who::parse("alcie", None, None),
            Err(WriteError::UnknownUser { .. })
        ));
    }

    #[test]
    fn a_dash_is_stdin_and_files_and_stdin_lose_one_final_line_break() {
        let stdin = |text: &str| std::io::Cursor::new(text.as_bytes().to_vec());
        assert_eq!(TextSource::argument("-".into()), TextSource::Stdin);
        assert_eq!(
            TextSource::argument("@notes.txt".into()),
            TextSource::Literal("@notes.txt".into())
        );
        let read = |source: TextSource, input: &str| source.read(stdin(input)).unwrap();
        assert_eq!(read(TextSource::Stdin, "hi\n"), "hi");
        assert_eq!(read(TextSource::Stdin, "hi\r\n"), "hi");
        assert_eq!(read(TextSource::Stdin, "two\nlines\n\n"), "two\nlines\n");
        assert_eq!(read(TextSource::Literal("-".into()), "ignored"), "-");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text");
        std::fs::write(&path, "from a file ✓\n").unwrap();
        assert_eq!(read(TextSource::File(path.clone()), ""), "from a file ✓");
        std::fs::write(&path, [b'o', b'k', 0xff]).unwrap();
        let error = TextSource::File(path)
            .read(stdin(""))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not UTF-8") && error.contains("byte 2"),
            "{error}"
        );
        let missing = TextSource::File(dir.path().join("missing"))
            .read(stdin(""))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing"), "{missing}");
    }

    #[test]
    fn a_refusal_lists_the_participants() {
        let named = Participants::from([
            ("01HZY3".to_owned(), None),
            (
                "hu-me-cd63da".to_owned(),
                Some(("Ann Lee".to_owned(), "ann".to_owned())),
            ),
        ]);
        assert_eq!(list(&named), "01HZY3, hu-me-cd63da (@ann)");
    }

    #[test]
    fn now_is_utc_with_an_offset_and_microseconds() {
        let at = now();
        assert!(at.ends_with("+00:00"), "{at}");
        assert_eq!(at.len(), "2026-01-01T00:00:00.000000+00:00".len(), "{at}");
        assert!(messaging_stream::timestamp::parse_instant(&at).is_some());
    }
}
