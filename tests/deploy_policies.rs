//! policies/*.json are exactly what template.yaml embeds, they name no wildcard action, and the DynamoDB
//! data-plane actions they allow are the ones the function's code calls. No AWS and no DynamoDB needed.
//!
//! File naming: `policies/execution-<name>.json` is the execution role's inline policy `execution-<name>`
//! (written directly, or under `!If [Condition, policy, !Ref AWS::NoValue]` when it depends on a parameter);
//! `policies/endpoint-dynamodb.json` is the DynamoDB gateway endpoint's policy, and
//! `policies/endpoint-cache-<choice>.json` the statements it gains when the `ReadCache` parameter is `<choice>`;
//! `policies/operator-<name>.json` is for people (`ddb redrive`), never in the template. Any other file is an error.
//!
//! One test needs DynamoDB Local and the local TLS redis-server (testkit::valkey): for each `ReadCache` choice
//! it runs the handler as the template configures it and proves the execution role grants exactly the calls
//! it makes (with `valkey`, its `elasticache:Connect` too).

mod deploy_support;

use deploy_support::*;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use testkit::{items, local};

const TABLE_ARN: &str =
    "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}";

#[test]
fn every_policy_file_is_embedded_in_the_template_and_nothing_else_is() {
    let template = template();
    let role_policies = at(
        resource(&template, "ExecutionRole"),
        &["Properties", "Policies"],
    )
    .as_sequence()
    .expect("ExecutionRole Policies is a list");
    let embedded: Vec<(String, Json)> = role_policies
        .iter()
        .map(|p| conditional(p).1)
        .map(|p| {
            let name = at(p, &["PolicyName"])
                .as_str()
                .expect("PolicyName")
                .to_owned();
            (name, to_policy_json(at(p, &["PolicyDocument"])))
        })
        .collect();

    let files = policy_files();
    assert!(!files.is_empty(), "policies/ holds no .json file");
    let mut problems = Vec::new();
    for (stem, document) in &files {
        let in_template = if let Some(rest) = stem.strip_prefix("endpoint-") {
            // Compared for each ReadCache choice: the_endpoint_policy_is_its_files_for_each_read_cache_choice.
            let choice = rest.strip_prefix("cache-");
            if rest != "dynamodb"
                && !choice.is_some_and(|c| read_cache_choices().iter().any(|r| r == c))
            {
                problems.push(format!(
                    "policies/{stem}.json: the endpoint's files are endpoint-dynamodb.json and endpoint-cache-<ReadCache choice>.json"
                ));
            }
            continue;
        } else if stem.starts_with("operator-") {
            assert!(
                !template_text().contains(&format!("PolicyName: {stem}")),
                "policies/{stem}.json is an operator's policy: it must not be attached in template.yaml"
            );
            continue;
        } else if stem.starts_with("execution-") {
            embedded
                .iter()
                .find(|(name, _)| name == stem)
                .map(|(_, doc)| doc.clone())
        } else {
            problems.push(format!(
                "policies/{stem}.json: name it execution-*.json (role policy), operator-*.json or endpoint-dynamodb.json"
            ));
            continue;
        };
        match in_template {
            None => problems.push(format!(
                "policies/{stem}.json is not in template.yaml: add it to ExecutionRole Policies as PolicyName {stem}"
            )),
            Some(doc) if &doc != document => problems.push(format!(
                "policies/{stem}.json differs from template.yaml (statements written with !Sub and the same strings):\n  file:     {document}\n  template: {doc}"
            )),
            Some(_) => {}
        }
    }
    for (name, _) in &embedded {
        if !files.iter().any(|(stem, _)| stem == name) {
            problems.push(format!(
                "ExecutionRole policy {name} has no policies/{name}.json"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A role policy entry as written, or the policy of `!If [Condition, policy, !Ref AWS::NoValue]` with its condition.
fn conditional(entry: &serde_norway::Value) -> (Option<String>, &serde_norway::Value) {
    match entry {
        serde_norway::Value::Tagged(tagged) if tagged.tag == "If" => {
            let parts = tagged.value.as_sequence().expect("!If takes a list");
            assert_eq!(parts.len(), 3, "!If [Condition, policy, !Ref AWS::NoValue]");
            let otherwise = to_policy_json(&parts[2]);
            assert_eq!(
                otherwise,
                serde_json::json!({"!Ref": "AWS::NoValue"}),
                "a conditional policy is left out, not replaced, when its condition is false"
            );
            (parts[0].as_str().map(str::to_owned), &parts[1])
        }
        other => (None, other),
    }
}

/// Each failure-destination policy is attached exactly when its destination exists, and grants only on it.
#[test]
fn the_role_gets_exactly_what_the_chosen_failure_destination_needs() {
    let template = template();
    let policies = at(
        resource(&template, "ExecutionRole"),
        &["Properties", "Policies"],
    )
    .as_sequence()
    .unwrap();
    let condition_of = |name: &str| {
        policies
            .iter()
            .map(conditional)
            .find(|(_, p)| at(p, &["PolicyName"]).as_str() == Some(name))
            .unwrap_or_else(|| panic!("ExecutionRole has no policy {name}"))
            .0
    };
    for (policy, destination) in [
        ("execution-failure-bucket", "FailureBucket"),
        ("execution-failure-queue", "FailureQueue"),
    ] {
        let condition = at(resource(&template, destination), &["Condition"])
            .as_str()
            .map(str::to_owned);
        assert!(condition.is_some(), "{destination} has a Condition");
        assert_eq!(condition_of(policy), condition, "{policy} vs {destination}");
        for statement in statements(&policy_file(policy)) {
            for resource in strings(statement.get("Resource")) {
                assert!(
                    resource.starts_with(&format!("${{{destination}.Arn}}")),
                    "{policy}: {resource} is not {destination}"
                );
            }
        }
    }
    // What AWS documents for each destination: S3 PutObject + ListBucket, SQS SendMessage.
    let actions = |name: &str| -> BTreeSet<String> {
        statements(&policy_file(name))
            .iter()
            .flat_map(|s| strings(s.get("Action")))
            .collect()
    };
    assert_eq!(
        actions("execution-failure-bucket"),
        BTreeSet::from(["s3:ListBucket".to_owned(), "s3:PutObject".to_owned()])
    );
    assert_eq!(
        actions("execution-failure-queue"),
        BTreeSet::from(["sqs:SendMessage".to_owned()])
    );
}

/// The operator's redrive runs the function's handler: the same table grants and the same cache invalidation
/// (on the DynamoDB cache, or connecting to the Valkey cache as the function's user), plus DescribeTable (is a range from the table's current stream?), reading the failed ranges back from this
/// stream and the failed batches from the failure bucket. Nothing else.
#[test]
fn operator_redrive_policy_is_the_handler_plus_reading_failures() {
    let operator = policy_file("operator-redrive");
    let mut handler = dynamodb_grants(&policy_file("execution-dynamodb"));
    handler.insert((
        "dynamodb:DescribeTable".to_owned(),
        TABLE_ARN.to_owned(),
        String::new(),
    ));
    assert_eq!(
        dynamodb_grants(&operator)
            .into_iter()
            .filter(|(_, resource, _)| resource.starts_with(TABLE_ARN))
            .collect::<BTreeSet<_>>(),
        handler,
        "operator-redrive.json must grant on the table exactly what execution-dynamodb.json grants, and DescribeTable"
    );
    let cache = dynamodb_grants(&policy_file("execution-cache-dynamodb"));
    assert_eq!(
        dynamodb_grants(&operator)
            .into_iter()
            .filter(|grant| cache.iter().any(|(_, resource, _)| *resource == grant.1))
            .collect::<BTreeSet<_>>(),
        cache,
        "operator-redrive.json must invalidate the cache exactly as execution-cache-dynamodb.json does"
    );
    let pairs = |document: &Json| -> BTreeSet<(String, String)> {
        statements(document)
            .iter()
            .flat_map(|s| {
                let resources = strings(s.get("Resource"));
                strings(s.get("Action"))
                    .into_iter()
                    .flat_map(move |a| resources.clone().into_iter().map(move |r| (a.clone(), r)))
            })
            .collect()
    };
    let valkey = pairs(&policy_file("execution-cache-valkey"));
    assert!(
        pairs(&operator).is_superset(&valkey),
        "operator-redrive.json must connect to the Valkey cache exactly as execution-cache-valkey.json does"
    );
    let rest: BTreeSet<(String, String)> = statements(&operator)
        .iter()
        .flat_map(|s| {
            let resources = strings(s.get("Resource"));
            strings(s.get("Action"))
                .into_iter()
                .flat_map(move |a| resources.clone().into_iter().map(move |r| (a.clone(), r)))
        })
        .filter(|(_, resource)| !resource.starts_with(TABLE_ARN))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("dynamodb:GetRecords", "${MessagesTable.StreamArn}"),
        ("dynamodb:GetShardIterator", "${MessagesTable.StreamArn}"),
        ("s3:GetObject", "${FailureBucket.Arn}/*"),
        (
            "dynamodb:BatchWriteItem",
            "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${AppName}-cache-${Env}",
        ),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_owned(), r.to_owned()))
    .chain(valkey)
    .collect();
    assert_eq!(rest, expected);
}

#[test]
fn no_wildcard_action_and_no_not_action() {
    for (stem, document) in policy_files() {
        for statement in statements(&document) {
            assert!(
                statement.get("NotAction").is_none(),
                "policies/{stem}.json: NotAction"
            );
            let actions = strings(statement.get("Action"));
            assert!(
                !actions.is_empty(),
                "policies/{stem}.json: statement without Action"
            );
            for action in actions {
                assert!(
                    !action.contains('*') && !action.contains('?'),
                    "policies/{stem}.json: wildcard action {action}: name each action the function needs"
                );
            }
        }
    }
}

/// `Resource: "*"` only where IAM accepts nothing else.
#[test]
fn star_resource_only_for_actions_without_resource_types() {
    let allowed: BTreeSet<&str> = [
        "dynamodb:ListStreams",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
    ]
    .into();
    for (stem, document) in policy_files() {
        for statement in statements(&document) {
            if strings(statement.get("Resource")).iter().any(|r| r == "*") {
                for action in strings(statement.get("Action")) {
                    assert!(
                        allowed.contains(action.as_str()),
                        "policies/{stem}.json: {action} on \"*\": scope it to an ARN"
                    );
                }
            }
        }
    }
}

/// (action, resource) pairs allowed by a document's DynamoDB statements, with their conditions.
fn dynamodb_grants(document: &Json) -> BTreeSet<(String, String, String)> {
    let mut grants = BTreeSet::new();
    for statement in statements(document) {
        assert_eq!(statement["Effect"], "Allow");
        let condition = statement
            .get("Condition")
            .map_or_else(String::new, Json::to_string);
        for action in strings(statement.get("Action")) {
            if action.starts_with("dynamodb:") {
                for resource in strings(statement.get("Resource")) {
                    grants.insert((action.clone(), resource, condition.clone()));
                }
            }
        }
    }
    grants
}

#[test]
fn execution_policy_grants_exactly_the_function_data_plane() {
    let leading_grp = r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["GRP#*"]}}"#;
    // Reads of an owner's rows and of a group's newest messages (the fallback after a REMOVE).
    let leading_grp_msg =
        r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["GRP#*","MSG#*"]}}"#;
    let index_arn = format!("{TABLE_ARN}/index/message-group-sk-index");
    let expected: BTreeSet<(String, String, String)> = [
        ("dynamodb:Query", index_arn.as_str(), ""),
        ("dynamodb:Query", TABLE_ARN, leading_grp_msg),
        ("dynamodb:PutItem", TABLE_ARN, leading_grp),
        ("dynamodb:DeleteItem", TABLE_ARN, leading_grp),
        ("dynamodb:UpdateItem", TABLE_ARN, leading_grp),
    ]
    .into_iter()
    .map(|(a, r, c)| (a.to_owned(), r.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(
        dynamodb_grants(&policy_file("execution-dynamodb")),
        expected
    );
}

/// The endpoint's policy as deployed with `ReadCache` = `choice`: endpoint-dynamodb.json, plus the statements of
/// endpoint-cache-<choice>.json when there is one.
fn endpoint_files_for(choice: &str) -> Json {
    let mut document = policy_file("endpoint-dynamodb");
    if let Some((_, extra)) = policy_files()
        .into_iter()
        .find(|(stem, _)| *stem == format!("endpoint-cache-{choice}"))
    {
        let statements = document["Statement"]
            .as_array_mut()
            .expect("a Statement list");
        statements.extend(
            extra["Statement"]
                .as_array()
                .expect("a Statement list")
                .iter()
                .cloned(),
        );
    }
    document
}

/// The policies of the execution role as deployed with `ReadCache` = `choice`, by name.
fn role_for(choice: &str) -> BTreeMap<String, Json> {
    let template = template_with(&[("ReadCache", choice)]);
    at(
        resource(&template, "ExecutionRole"),
        &["Properties", "Policies"],
    )
    .as_sequence()
    .expect("ExecutionRole Policies is a list")
    .iter()
    .map(|p| {
        (
            at(p, &["PolicyName"])
                .as_str()
                .expect("PolicyName")
                .to_owned(),
            to_policy_json(at(p, &["PolicyDocument"])),
        )
    })
    .collect()
}

/// The DynamoDB grants of every policy of the role as deployed with `ReadCache` = `choice`.
fn role_grants_for(choice: &str) -> BTreeSet<(String, String, String)> {
    role_for(choice)
        .values()
        .flat_map(dynamodb_grants)
        .collect()
}

const CACHE_TABLE_ARN: &str =
    "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${AppName}-cache-${Env}";

#[test]
fn the_endpoint_policy_is_its_files_for_each_read_cache_choice() {
    let choices = read_cache_choices();
    assert_eq!(
        choices,
        ["none", "dynamodb", "valkey"],
        "ReadCache's choices"
    );
    for choice in &choices {
        let template = template_with(&[("ReadCache", choice)]);
        let deployed = to_policy_json(at(
            resource(&template, "DynamoDbEndpoint"),
            &["Properties", "PolicyDocument"],
        ));
        assert_eq!(deployed, endpoint_files_for(choice), "ReadCache {choice}");
    }
}

/// With ReadCache none the role and the endpoint grant nothing on a cache; with dynamodb exactly the
/// invalidation, under the condition that creates the table; with valkey exactly the connection to that cache
/// (and nothing on a cache table), under the condition that creates the cache.
#[test]
fn the_role_gets_exactly_what_the_chosen_read_cache_needs() {
    let on_cache =
        |grants: &BTreeSet<(String, String, String)>| -> BTreeSet<(String, String, String)> {
            grants
                .iter()
                .filter(|(_, resource, _)| resource.contains("-cache-"))
                .cloned()
                .collect()
        };
    let none = role_for("none");
    assert!(
        !none.keys().any(|name| name.contains("cache")),
        "ReadCache none: {:?}",
        none.keys()
    );
    assert!(on_cache(&role_grants_for("none")).is_empty());
    let dynamodb = role_for("dynamodb");
    assert_eq!(
        dynamodb
            .keys()
            .filter(|name| name.contains("cache"))
            .collect::<Vec<_>>(),
        ["execution-cache-dynamodb"]
    );
    assert_eq!(
        on_cache(&role_grants_for("dynamodb")),
        dynamodb_grants(&policy_file("execution-cache-dynamodb"))
    );
    let valkey = role_for("valkey");
    assert_eq!(
        valkey
            .keys()
            .filter(|name| name.contains("cache"))
            .collect::<Vec<_>>(),
        ["execution-cache-valkey"]
    );
    assert_eq!(
        valkey["execution-cache-valkey"],
        policy_file("execution-cache-valkey")
    );
    assert!(
        on_cache(&role_grants_for("valkey")).is_empty(),
        "valkey: a grant on a cache table"
    );
    // Everything else is the same in all three.
    let without_cache = |mut role: BTreeMap<String, Json>| {
        role.remove("execution-cache-dynamodb");
        role.remove("execution-cache-valkey");
        role
    };
    assert_eq!(without_cache(dynamodb), none);
    assert_eq!(without_cache(valkey), none);
    // Each policy is attached exactly when its cache exists.
    let template = template();
    let policies = at(
        resource(&template, "ExecutionRole"),
        &["Properties", "Policies"],
    )
    .as_sequence()
    .unwrap();
    for (policy, cache) in [
        ("execution-cache-dynamodb", "CacheTable"),
        ("execution-cache-valkey", "Cache"),
    ] {
        let condition = policies
            .iter()
            .map(conditional)
            .find(|(_, p)| at(p, &["PolicyName"]).as_str() == Some(policy))
            .unwrap_or_else(|| panic!("ExecutionRole has {policy}"))
            .0;
        assert!(condition.is_some(), "{policy} is conditional");
        assert_eq!(
            condition.as_deref(),
            at(resource(&template, cache), &["Condition"]).as_str(),
            "{policy} vs {cache}"
        );
    }
}

/// The Valkey cache: only `elasticache:Connect`, on exactly the cache the template creates and the user the
/// function connects as (the names the template gives them, which the function's environment names too).
#[test]
fn execution_cache_valkey_policy_connects_to_exactly_that_cache_as_the_function_user() {
    let document = policy_file("execution-cache-valkey");
    let grants: BTreeSet<(String, String)> = statements(&document)
        .iter()
        .flat_map(|s| {
            assert_eq!(s["Effect"], "Allow");
            assert!(s.get("Condition").is_none());
            let resources = strings(s.get("Resource"));
            strings(s.get("Action"))
                .into_iter()
                .flat_map(move |a| resources.clone().into_iter().map(move |r| (a.clone(), r)))
        })
        .collect();
    let template = template();
    let sub = |id: &str, path: &[&str]| -> String {
        match at(resource(&template, id), path) {
            serde_norway::Value::Tagged(t) if t.tag == "Sub" => {
                t.value.as_str().expect("!Sub of a string").to_owned()
            }
            other => panic!("{id} {path:?}: {other:?} is not a !Sub string"),
        }
    };
    let arn = "arn:${AWS::Partition}:elasticache:${AWS::Region}:${AWS::AccountId}";
    let cache = sub("Cache", &["Properties", "ServerlessCacheName"]);
    let user = sub("CacheUser", &["Properties", "UserId"]);
    assert_eq!(
        user,
        sub("CacheUser", &["Properties", "UserName"]),
        "IAM users: UserName = UserId"
    );
    assert_eq!(
        grants,
        BTreeSet::from([
            (
                "elasticache:Connect".to_owned(),
                format!("{arn}:serverlesscache:{cache}")
            ),
            (
                "elasticache:Connect".to_owned(),
                format!("{arn}:user:{user}")
            ),
        ])
    );
    // The function connects as that user, to that cache: the names its IAM token is signed for.
    let deployed = template_with(&[("ReadCache", "valkey")]);
    let variables = at(
        resource(&deployed, "MessagingStreamFunction"),
        &["Properties", "Environment", "Variables"],
    );
    let reference = |text: &str| serde_norway::from_str::<serde_norway::Value>(text).unwrap();
    assert_eq!(
        at(variables, &["VALKEY_USER"]),
        &reference("!Ref CacheUser")
    );
    assert_eq!(
        at(variables, &["VALKEY_CACHE_NAME"]),
        &reference("!Ref Cache")
    );
    // The readers' user is not the function's: the role cannot connect as it.
    let reader = sub("CacheReaderUser", &["Properties", "UserId"]);
    assert_ne!(reader, user);
    assert!(!grants
        .iter()
        .any(|(_, r)| r.ends_with(&format!(":user:{reader}"))));
}

/// The gateway endpoint lets through the same (action, resource) pairs as the role, for the role only, in
/// each ReadCache choice.
#[test]
fn endpoint_policy_mirrors_the_execution_data_plane() {
    let without_conditions =
        |grants: BTreeSet<(String, String, String)>| -> BTreeSet<(String, String)> {
            grants.into_iter().map(|(a, r, _)| (a, r)).collect()
        };
    for choice in read_cache_choices() {
        let endpoint = endpoint_files_for(&choice);
        for statement in statements(&endpoint) {
            assert_eq!(
                statement["Principal"],
                serde_json::json!({"AWS": "${ExecutionRole.Arn}"}),
                "endpoint statements must name the function's role"
            );
        }
        let role: BTreeSet<(String, String, String)> = role_grants_for(&choice)
            .into_iter()
            .filter(|(_, resource, _)| {
                resource.starts_with(TABLE_ARN) || resource == CACHE_TABLE_ARN
            })
            .collect();
        assert_eq!(
            without_conditions(dynamodb_grants(&endpoint)),
            without_conditions(role),
            "ReadCache {choice}"
        );
    }
}

/// The cache table: only the invalidations' BatchWriteItem, on that table, on the cache's two key prefixes.
#[test]
fn execution_cache_policy_grants_only_invalidation_on_the_cache_table() {
    let leading =
        r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["conversations#*","messages#*"]}}"#;
    assert_eq!(
        dynamodb_grants(&policy_file("execution-cache-dynamodb")),
        BTreeSet::from([(
            "dynamodb:BatchWriteItem".to_owned(),
            CACHE_TABLE_ARN.to_owned(),
            leading.to_owned()
        )])
    );
    let template = template();
    assert_eq!(
        at(
            resource(&template, "CacheTable"),
            &["Properties", "TableName"]
        ),
        &serde_norway::from_str::<serde_norway::Value>("!Sub ${AppName}-cache-${Env}").unwrap()
    );
}

/// `text` of a `!Sub` with the parameters at their defaults (`${AppName}-cache-${Env}`: `cruddur-cache-prod`).
fn with_defaults(text: &str) -> String {
    let template = template();
    parameters(&template, &[])
        .iter()
        .fold(text.to_owned(), |text, (name, value)| {
            text.replace(&format!("${{{name}}}"), value)
        })
}

/// The `!Sub` string of `path` in resource `id` of `template`, with the parameters at their defaults.
fn sub_of(template: &serde_norway::Value, id: &str, path: &[&str]) -> String {
    match at(resource(template, id), path) {
        serde_norway::Value::Tagged(t) if t.tag == "Sub" => {
            with_defaults(t.value.as_str().expect("!Sub of a string"))
        }
        other => panic!("{id} {path:?}: {other:?} is not a !Sub string"),
    }
}

/// The function's environment as the template sets it with `ReadCache` = `choice`, on a test table (and a
/// cache table, where the template names one) of DynamoDB Local: (name, value), the `!Ref`s replaced. The Valkey
/// cache's endpoint is `valkey_endpoint` (the local server's); its name and user are the names the template gives
/// them with the default parameters.
fn environment_for(
    choice: &str,
    table: &str,
    cache_table: &str,
    valkey_endpoint: &str,
) -> BTreeMap<String, String> {
    let template = template_with(&[("ReadCache", choice)]);
    let variables = at(
        resource(&template, "MessagingStreamFunction"),
        &["Properties", "Environment", "Variables"],
    )
    .as_mapping()
    .expect("Variables is a mapping");
    variables
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().expect("a variable's name").to_owned();
            let value = match value {
                serde_norway::Value::String(text) => text.clone(),
                serde_norway::Value::Tagged(t) if t.tag == "Ref" => match t.value.as_str() {
                    Some("TableName") => table.to_owned(),
                    Some("CacheTable") => cache_table.to_owned(),
                    // ElastiCache's Ref of each: the cache's name, the user's id.
                    Some("Cache") => {
                        sub_of(&template, "Cache", &["Properties", "ServerlessCacheName"])
                    }
                    Some("CacheUser") => sub_of(&template, "CacheUser", &["Properties", "UserId"]),
                    other => panic!("{name}: !Ref {other:?}: which test resource is that?"),
                },
                serde_norway::Value::Tagged(t)
                    if t.tag == "Sub"
                        && t.value.as_str()
                            == Some("${Cache.Endpoint.Address}:${Cache.Endpoint.Port}") =>
                {
                    valkey_endpoint.to_owned()
                }
                other => panic!("{name}: {other:?} is neither a string nor a !Ref"),
            };
            (name, value)
        })
        .collect()
}

/// For each ReadCache choice: the handler, configured by the environment the template gives it (built as the
/// Lambda binary builds it: `Config::from_lookup` then `App::on_client`, which `App::from_config` calls), takes
/// every path (a move, a replay, an edit, a fallback after a REMOVE, a same-instant nudge); the DynamoDB calls
/// it makes, as IAM authorises them, are exactly what the role deployed with that choice grants. It also
/// counts one message to a 2-row group: Query 1 + TransactWriteItems 1 with no cache, + BatchWriteItem 1
/// with the DynamoDB cache; a replay of it, Query 1 (+ BatchWriteItem 1). With the Valkey cache the DynamoDB
/// calls are those of no cache (its invalidation is one Valkey round trip, not a DynamoDB call): the Valkey cache
/// is the local TLS redis-server, as the user `VALKEY_USER` names, with `CacheUser`'s access string and a password
/// standing in for the IAM token (`App::from_config` builds it with IAM in AWS); the group's lists are gone
/// afterwards, and the role's `elasticache:Connect` is exactly on the `VALKEY_CACHE_NAME` cache and that user.
#[tokio::test]
async fn the_execution_role_equals_the_calls_made_in_each_read_cache_choice() {
    use testkit::request_log::RequestLog;
    const T0: &str = "2024-05-06T09:00:00+00:00";
    const T1: &str = "2025-01-15T10:00:00+00:00";
    const T2: &str = "2025-01-15T11:00:00+00:00";
    for choice in read_cache_choices() {
        let table = local::unique_table();
        let cache_table = format!("cache-{}", uuid::Uuid::new_v4().simple());
        let local_valkey = testkit::valkey::ddb_environment()
            .into_iter()
            .find(|(name, _)| *name == "VALKEY_ENDPOINT")
            .expect("the local server's endpoint")
            .1;
        let mut environment = environment_for(&choice, &table, &cache_table, &local_valkey);
        let valkey: Vec<String> = environment
            .keys()
            .filter(|name| name.starts_with("VALKEY_"))
            .cloned()
            .collect();
        assert_eq!(
            valkey,
            if choice == "valkey" {
                vec!["VALKEY_CACHE_NAME", "VALKEY_ENDPOINT", "VALKEY_USER"]
            } else {
                vec![]
            },
            "ReadCache {choice}: the Valkey variables"
        );
        environment.insert(
            "AWS_ENDPOINT_URL_DYNAMODB".into(),
            local::endpoint().to_owned(),
        );
        let config = messaging_stream::Config::from_lookup(|name| environment.get(name).cloned())
            .unwrap_or_else(|e| panic!("ReadCache {choice}: {e}"));
        let log = RequestLog::new();
        let client = local::client_for(&config, &log).await;
        ddb::commands::schema::create_table(&client, &table, &config.group_index_name)
            .await
            .expect("create the test table");
        if let Some(cache) = &config.cache_table_name {
            ddb::commands::schema::create_cache_table(&client, cache)
                .await
                .expect("create the cache table");
        }
        let mut app = messaging_stream::App::on_client(client.clone(), config.clone());
        // The Valkey connection as the function makes it: elasticache:Connect to VALKEY_CACHE_NAME as VALKEY_USER.
        let mut connects = BTreeSet::new();
        if let Some(settings) = &config.valkey {
            assert_eq!(
                settings.user,
                sub_of(&template(), "CacheUser", &["Properties", "UserId"])
            );
            let arn = "arn:${AWS::Partition}:elasticache:${AWS::Region}:${AWS::AccountId}";
            connects.insert(format!("{arn}:serverlesscache:{}", settings.cache_name));
            connects.insert(format!("{arn}:user:{}", settings.user));
            let mut rules = vec![
                "reset".to_owned(),
                ">local-stand-in-for-the-token".to_owned(),
            ];
            let deployed = template_with(&[("ReadCache", "valkey")]);
            rules.extend(
                at(
                    resource(&deployed, "CacheUser"),
                    &["Properties", "AccessString"],
                )
                .as_str()
                .expect("an access string")
                .split_whitespace()
                .map(str::to_owned),
            );
            let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
            testkit::valkey::set_user(&settings.user, &rules).await;
            let cache = testkit::valkey::ddb_database()
                .cache_as(&settings.user, "local-stand-in-for-the-token");
            app = app.with_cache(std::sync::Arc::new(cache));
            let mut admin = testkit::valkey::ddb_database().admin().await;
            for key in ["messages#g", "conversations#a", "conversations#b"] {
                redis::cmd("HSET")
                    .arg(key)
                    .arg("cached_value")
                    .arg("[]")
                    .query_async::<()>(&mut admin)
                    .await
                    .expect("a cached list");
            }
        }
        for item in [
            items::group_row("a", "g", T0, "x"),
            items::group_row("b", "g", T0, "x"),
            items::message_item("g", T0, "zero"),
            items::group_row("a", "g-other", T2, "other conversation"),
        ] {
            client
                .put_item()
                .table_name(&table)
                .set_item(Some(item))
                .send()
                .await
                .expect("put a test item");
        }
        let invoke = |records: Vec<Json>| {
            let app = app.clone();
            async move {
                let records = messaging_stream::event::parse_event(&items::event(records))
                    .expect("a stream event");
                let (response, _) = messaging_stream::handle(&app, records, None)
                    .await
                    .expect("the handler answers");
                assert!(response.batch_item_failures.is_empty(), "{response:?}");
            }
        };
        let counted = |expected: &[(&str, u64)]| -> BTreeMap<String, u64> {
            let mut counts: BTreeMap<String, u64> = expected
                .iter()
                .map(|(op, n)| ((*op).to_owned(), *n))
                .collect();
            // The DynamoDB cache's one invalidation per group, exactly when the choice is that cache.
            if choice == "dynamodb" {
                counts.insert("BatchWriteItem".into(), 1);
            }
            counts
        };
        log.reset();
        let message = items::message_record("g", T1, "one", "1");
        invoke(vec![message.clone()]).await;
        assert_eq!(
            log.counts(),
            counted(&[("Query", 1), ("TransactWriteItems", 1)]),
            "ReadCache {choice}: one message to a 2-row group"
        );
        let moved = log.iam_uses();
        if config.valkey.is_some() {
            let mut admin = testkit::valkey::ddb_database().admin().await;
            for key in ["messages#g", "conversations#a", "conversations#b"] {
                let left: i64 = redis::cmd("EXISTS")
                    .arg(key)
                    .query_async(&mut admin)
                    .await
                    .expect("EXISTS");
                assert_eq!(left, 0, "ReadCache valkey: {key} was not invalidated");
            }
        }
        log.reset();
        invoke(vec![message]).await;
        assert_eq!(
            log.counts(),
            counted(&[("Query", 1)]),
            "ReadCache {choice}: its replay"
        );
        // An edit (an Update in place), a REMOVE's fallback (a Query of MSG#), a same-instant collision
        // with a's other conversation (a Query of a's keys around the instant, then a nudged move).
        invoke(vec![items::edit_record("g", T1, "one, edited", "2")]).await;
        invoke(vec![items::remove_record("g", T1, "3")]).await;
        invoke(vec![items::message_record("g", T2, "same instant", "4")]).await;
        let mut used = log.iam_uses();
        used.extend(moved);

        // The recorded uses, named as the policies name them.
        let generic = |resource: &str| -> String {
            let arn = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:";
            let named = if let Some(rest) = resource.strip_prefix(&format!("table/{table}")) {
                format!("table/${{TableName}}{rest}")
            } else if resource == format!("table/{cache_table}") {
                "table/${AppName}-cache-${Env}".to_owned()
            } else {
                panic!("a call on {resource}: neither the table nor the cache table")
            };
            format!("{arn}{named}")
        };
        let performed: BTreeSet<(String, String)> = used
            .iter()
            .map(|u| (u.action.clone(), generic(&u.resource)))
            .collect();
        let role: BTreeSet<(String, String, String)> = role_grants_for(&choice)
            .into_iter()
            .filter(|(_, resource, _)| {
                resource.starts_with(TABLE_ARN) || resource == CACHE_TABLE_ARN
            })
            .collect();
        let granted: BTreeSet<(String, String)> = role
            .iter()
            .map(|(a, r, _)| (a.clone(), r.clone()))
            .collect();
        assert_eq!(
            performed, granted,
            "ReadCache {choice}: calls made vs the role"
        );
        let connect_grants: BTreeSet<String> = role_for(&choice)
            .values()
            .flat_map(|document| statements(document).clone())
            .filter(|s| strings(s.get("Action")).contains(&"elasticache:Connect".to_owned()))
            .flat_map(|s| strings(s.get("Resource")))
            .map(|r| with_defaults(&r))
            .collect();
        let connects: BTreeSet<String> = connects.iter().map(|r| with_defaults(r)).collect();
        assert_eq!(
            connect_grants, connects,
            "ReadCache {choice}: elasticache:Connect"
        );
        // Each call's partition key is within its grant's dynamodb:LeadingKeys.
        for use_ in &used {
            let resource = generic(&use_.resource);
            let patterns: Vec<String> = role
                .iter()
                .filter(|(a, r, _)| *a == use_.action && *r == resource)
                .flat_map(|(_, _, condition)| {
                    serde_json::from_str::<Json>(condition)
                        .ok()
                        .and_then(|c| {
                            c.pointer("/ForAllValues:StringLike/dynamodb:LeadingKeys")
                                .cloned()
                        })
                        .map(|keys| strings(Some(&keys)))
                        .unwrap_or_default()
                })
                .collect();
            if patterns.is_empty() {
                continue; // the GSI grant carries no LeadingKeys condition
            }
            let key = use_
                .leading_key
                .as_deref()
                .expect("a call with a partition key");
            assert!(
                patterns
                    .iter()
                    .any(|p| key.starts_with(p.trim_end_matches('*'))),
                "ReadCache {choice}: {use_:?} is outside {patterns:?}"
            );
        }
    }
}

// That the policy allows exactly what the code does is checked on recorded calls, not on the source:
// tests/consumer.rs `the_execution_policy_allows_exactly_what_the_handler_does`.

#[test]
fn stream_and_queue_statements_name_this_stack_resources() {
    let stream = policy_file("execution-stream");
    let grants: Vec<(Vec<String>, Vec<String>)> = statements(&stream)
        .iter()
        .map(|s| (strings(s.get("Action")), strings(s.get("Resource"))))
        .collect();
    assert!(grants.contains(&(
        vec![
            "dynamodb:DescribeStream".into(),
            "dynamodb:GetRecords".into(),
            "dynamodb:GetShardIterator".into()
        ],
        vec!["${MessagesTable.StreamArn}".into()]
    )));
    assert!(grants.contains(&(vec!["dynamodb:ListStreams".into()], vec!["*".into()])));
    let queue = policy_file("execution-failure-queue");
    assert_eq!(
        strings(statements(&queue)[0].get("Resource")),
        ["${FailureQueue.Arn}"]
    );
}
