//! The Cruddur messages table's data model: key prefixes, attribute names, the group index's
//! default name, and the read-path cache's key prefixes.
//!
//! The bottom of the crate: it imports nothing of ours, and every module that reads or writes an
//! item names its keys and attributes from here, so a name is spelt in one place.

/// The partition key of every item.
pub const PK_ATTR: &str = "pk";
/// The sort key of every item: a message's `created_at`, a group row's last message's.
pub const SK_ATTR: &str = "sk";

/// Prefix of group rows' partition key: `GRP#<owner_user_uuid>`.
pub const GROUP_PK_PREFIX: &str = "GRP#";
/// Prefix of message items' partition key: `MSG#<message_group_uuid>`.
pub const MESSAGE_PK_PREFIX: &str = "MSG#";

/// The attribute every group row carries and nothing else does (the GSI's hash key).
pub const GROUP_ATTR: &str = "message_group_uuid";
/// The message's text (on a group row: the last message's text).
pub const MESSAGE_ATTR: &str = "message";
/// Set to true when the text was cut to fit the item limit or `PREVIEW_MAX_BYTES`.
pub const TRUNCATED_ATTR: &str = "message_truncated";
/// On a nudged row only: the sort key of the message it previews (its own sort key is a little
/// later because another conversation of the owner holds the message's instant).
pub const MESSAGE_SK_ATTR: &str = "message_sk";
/// A message's id.
pub const MESSAGE_UUID_ATTR: &str = "message_uuid";
/// On a message: its sender; on a group row: the other member of the conversation.
pub const USER_UUID_ATTR: &str = "user_uuid";
/// The display name of the user in [`USER_UUID_ATTR`].
pub const USER_DISPLAY_NAME_ATTR: &str = "user_display_name";
/// The handle of the user in [`USER_UUID_ATTR`].
pub const USER_HANDLE_ATTR: &str = "user_handle";

/// Default name of the GSI on [`GROUP_ATTR`] (range key [`SK_ATTR`]).
pub const DEFAULT_GROUP_INDEX_NAME: &str = "message-group-sk-index";

/// Cache key prefix of a user's conversation list.
pub const CONVERSATIONS_PREFIX: &str = "conversations#";
/// Cache key prefix of a group's message list.
pub const MESSAGES_PREFIX: &str = "messages#";

/// The partition key of `owner`'s group rows: `GRP#<owner>`.
pub fn group_pk(owner: &str) -> String {
    format!("{GROUP_PK_PREFIX}{owner}")
}

/// The partition key of `group`'s messages: `MSG#<group>`.
pub fn message_pk(group: &str) -> String {
    format!("{MESSAGE_PK_PREFIX}{group}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_are_prefix_and_id() {
        // The Cruddur schema, stated independently of the constants.
        assert_eq!(group_pk("u-1"), "GRP#u-1");
        assert_eq!(message_pk("g-1"), "MSG#g-1");
    }
}
