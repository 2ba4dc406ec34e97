//! `ddb event`: a sample Lambda DynamoDB Streams event on stdout (as `sam local generate-event`),
//! for `ddb replay -`; needs no DynamoDB.

use super::sample::{self, Sample};
use super::write::{Participant, Who};
use super::{seed, CommandError};
use crate::cli::EventArgs;
use crate::connect::Target;
use crate::output::Output;

/// The region named in the sample's stream ARN.
const REGION: &str = "us-east-1";

/// Prints the event, pretty (with or without `--json`: it is JSON either way).
pub fn run(args: &EventArgs, target: &Target, out: &Output) -> Result<(), CommandError> {
    let from = sender(args.from.as_deref().unwrap_or(seed::ANDREW.handle))?;
    let event = sample::event(&Sample {
        change: args.change,
        group: args.group.clone(),
        at: args.at.clone(),
        text: args.text.clone(),
        from,
        count: args.count as usize,
        table: target.table().to_owned(),
        region: REGION.to_owned(),
    })?;
    out.document(&event)
}

/// The sender: a seed user as the seed names them, or any user's uuid with placeholder names made
/// from it (`User 1a2b3c4d`, `user-1a2b3c4d`): an event needs names, and no directory has them.
fn sender(from: &str) -> Result<Participant, CommandError> {
    let who = Who::parse(from, None, None)?;
    Ok(who.complete().unwrap_or_else(|| {
        let short = who.uuid.chars().take(8).collect::<String>();
        Participant {
            display_name: format!("User {short}"),
            handle: format!("user-{short}"),
            uuid: who.uuid,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_handle_has_its_names_and_a_uuid_gets_placeholders() {
        let andrew = sender(seed::ANDREW.handle).unwrap();
        assert_eq!(andrew, Participant::from(&seed::ANDREW));
        let uuid = "1a2b3c4d-0000-4000-8000-000000000000";
        let stranger = sender(uuid).unwrap();
        assert_eq!(
            (
                stranger.uuid.as_str(),
                stranger.display_name.as_str(),
                stranger.handle.as_str()
            ),
            (uuid, "User 1a2b3c4d", "user-1a2b3c4d")
        );
        assert!(sender("nobody").is_err());
    }
}
