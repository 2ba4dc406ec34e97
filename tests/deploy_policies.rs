//! policies/*.json are exactly what template.yaml embeds, they name no wildcard action, and the DynamoDB
//! data-plane actions they allow are the ones the function's code calls. No AWS and no DynamoDB needed.
//!
//! File naming: `policies/execution-<name>.json` is the execution role's inline policy `execution-<name>`
//! (written directly, or under `!If [Condition, policy, !Ref AWS::NoValue]` when it depends on a parameter);
//! `policies/endpoint-dynamodb.json` is the DynamoDB gateway endpoint's policy; `policies/operator-<name>.json` is
//! for people (`ddb redrive`), never in the template. Any other file is an error.

mod deploy_support;

use deploy_support::*;
use serde_json::Value as Json;
use std::collections::BTreeSet;

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
        let in_template = if stem == "endpoint-dynamodb" {
            Some(to_policy_json(at(
                resource(&template, "DynamoDbEndpoint"),
                &["Properties", "PolicyDocument"],
            )))
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

/// The operator's redrive runs the function's handler: the same table grants and the same cache invalidation,
/// plus DescribeTable (is a range from the table's current stream?), reading the failed ranges back from this
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
    let cache = dynamodb_grants(&policy_file("execution-cache"));
    assert_eq!(
        dynamodb_grants(&operator)
            .into_iter()
            .filter(|grant| cache.iter().any(|(_, resource, _)| *resource == grant.1))
            .collect::<BTreeSet<_>>(),
        cache,
        "operator-redrive.json must invalidate the cache exactly as execution-cache.json does"
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

/// The gateway endpoint lets through the same (action, resource) pairs as the role, for the role only.
#[test]
fn endpoint_policy_mirrors_the_execution_data_plane() {
    let endpoint = policy_file("endpoint-dynamodb");
    for statement in statements(&endpoint) {
        assert_eq!(
            statement["Principal"],
            serde_json::json!({"AWS": "${ExecutionRole.Arn}"}),
            "endpoint statements must name the function's role"
        );
    }
    let without_conditions = |doc: &Json| -> BTreeSet<(String, String)> {
        dynamodb_grants(doc)
            .into_iter()
            .map(|(a, r, _)| (a, r))
            .collect()
    };
    let mut execution = without_conditions(&policy_file("execution-dynamodb"));
    execution.extend(without_conditions(&policy_file("execution-cache")));
    assert_eq!(without_conditions(&endpoint), execution);
}

/// The cache table: only the invalidations' BatchWriteItem, on that table, on the cache's two key prefixes.
#[test]
fn execution_cache_policy_grants_only_invalidation_on_the_cache_table() {
    let leading =
        r#"{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["conversations#*","messages#*"]}}"#;
    let cache_arn =
        "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${AppName}-cache-${Env}";
    assert_eq!(
        dynamodb_grants(&policy_file("execution-cache")),
        BTreeSet::from([(
            "dynamodb:BatchWriteItem".to_owned(),
            cache_arn.to_owned(),
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
