//! The offline checkers of `make deploy-check` can fail: each broken copy of template.yaml or of a policy is run
//! through the same make target (mk/deploy.mk, with DEPLOY_TEMPLATE / DEPLOY_POLICIES pointed at the copy) and
//! must be rejected, for the reason the copy was broken for; the real files must pass the same targets.
//!
//! Needs the tools of `make deploy-tools` (linters' venvs in .venv-lint/, cfn-guard in .tools/); without them
//! every test here fails, saying so.

mod deploy_support;

use deploy_support::*;
use std::path::PathBuf;
use std::process::Command;

/// What `make deploy-tools` installs, relative to the crate (the defaults of mk/deploy.mk).
const TOOLS: &[&str] = &[
    ".venv-lint/cfn-lint/bin/cfn-lint",
    ".venv-lint/cfn-lint/bin/python",
    ".venv-lint/checkov/bin/checkov",
    ".venv-lint/parliament/bin/parliament",
    ".tools/bin/cfn-guard",
];

fn require_tools() {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|tool| !crate_dir().join(tool).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "checkers missing: {missing:?}.\nFix: run `make deploy-tools` (or `make -f mk/deploy.mk deploy-tools`) in {}; \
         it installs cfn-lint, checkov and parliament from PyPI into .venv-lint/ and cfn-guard with cargo into .tools/",
        crate_dir().display()
    );
}

struct Outcome {
    ok: bool,
    output: String,
}

/// Runs `make -f mk/deploy.mk TARGET` on a copy of the template and of the policies, in its own directory.
fn check(target: &str, template: &str, policies: &[(&str, String)]) -> Outcome {
    require_tools();
    let dir = tempfile::tempdir().expect("temp dir");
    let template_path = dir.path().join("template.yaml");
    std::fs::write(&template_path, template).expect("write template copy");
    let policy_dir = dir.path().join("policies");
    std::fs::create_dir(&policy_dir).unwrap();
    let policy_paths: Vec<PathBuf> = policies
        .iter()
        .map(|(name, text)| {
            let path = policy_dir.join(format!("{name}.json"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let joined = policy_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new("make")
        .current_dir(crate_dir())
        // A `make test` that runs cargo passes its jobserver in MAKEFLAGS; this make must not inherit it.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .args(["--no-print-directory", "-f", "mk/deploy.mk", target])
        .arg(format!("DEPLOY_TEMPLATE={}", template_path.display()))
        .arg(format!("DEPLOY_POLICIES={joined}"))
        .arg(format!(
            "DEPLOY_BUILD_DIR={}",
            dir.path().join("build").display()
        ))
        .output()
        .expect("run make (is make installed?)");
    Outcome {
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn real_policies() -> Vec<(String, String)> {
    let dir = crate_dir().join("policies");
    policy_files()
        .into_iter()
        .map(|(stem, _)| {
            let text = std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap();
            (stem, text)
        })
        .collect()
}

fn one_policy<'a>(name: &'a str, text: &str) -> Vec<(&'a str, String)> {
    vec![(name, text.to_owned())]
}

/// The template with `from` replaced by `to`, once; panics if `from` is not there, so that a change to the
/// template cannot turn a broken copy into an unbroken one unnoticed.
fn broken(from: &str, to: &str) -> String {
    let text = template_text();
    assert!(
        text.contains(from),
        "template.yaml no longer contains {from:?}: update this test"
    );
    text.replacen(from, to, 1)
}

fn assert_rejected(outcome: &Outcome, because: &str) {
    assert!(
        !outcome.ok,
        "the checker accepted a broken copy:\n{}",
        outcome.output
    );
    assert!(
        outcome.output.contains(because),
        "rejected, but not for {because:?}:\n{}",
        outcome.output
    );
}

fn assert_passes(outcome: &Outcome) {
    assert!(outcome.ok, "{}", outcome.output);
}

fn policies_ref(policies: &[(String, String)]) -> Vec<(&str, String)> {
    policies
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect()
}

// ---- the real files pass every target (so a failure below is the breakage, not a broken tool) ----

#[test]
fn real_files_pass_every_checker() {
    let policies = real_policies();
    for target in [
        "deploy-cfn-lint",
        "deploy-checkov",
        "deploy-parliament",
        "deploy-guard",
    ] {
        assert_passes(&check(target, &template_text(), &policies_ref(&policies)));
    }
}

/// The template with `ReadCache`'s default set to `choice`: what a deploy with that choice checks as (checkov
/// evaluates conditions with the parameters' defaults).
fn with_read_cache(choice: &str) -> String {
    let from = "    Default: none\n    AllowedValues: [none, dynamodb, valkey]\n";
    let to = format!("    Default: {choice}\n    AllowedValues: [none, dynamodb, valkey]\n");
    broken(from, &to)
}

#[test]
fn real_files_pass_every_checker_in_each_read_cache_choice() {
    let policies = real_policies();
    let choices = read_cache_choices();
    assert_eq!(choices, ["none", "dynamodb", "valkey"]);
    for choice in &choices {
        let template = with_read_cache(choice);
        for target in ["deploy-cfn-lint", "deploy-checkov", "deploy-guard"] {
            let outcome = check(target, &template, &policies_ref(&policies));
            assert!(
                outcome.ok,
                "ReadCache {choice}, {target}:\n{}",
                outcome.output
            );
        }
    }
}

// ---- cfn-lint, on the template and on its SAM expansion ----

#[test]
fn cfn_lint_rejects_an_unknown_starting_position() {
    let bad = broken(
        "StartingPosition: TRIM_HORIZON",
        "StartingPosition: SIDEWAYS",
    );
    assert_rejected(&check("deploy-cfn-lint", &bad, &[]), "E3031");
}

#[test]
fn cfn_lint_rejects_too_small_a_memory_size() {
    let bad = broken("MemorySize: 128", "MemorySize: 64");
    assert_rejected(&check("deploy-cfn-lint", &bad, &[]), "E3034");
}

#[test]
fn sam_transform_rejects_an_unknown_event_property() {
    let bad = broken(
        "            BisectBatchOnFunctionError: true\n",
        "            BisectBatchOnFunctionError: true\n            BisectTwice: true\n",
    );
    assert_rejected(
        &check("deploy-cfn-lint", &bad, &[]),
        "property BisectTwice not defined",
    );
}

// ---- checkov ----

#[test]
fn checkov_rejects_a_table_without_point_in_time_recovery() {
    let bad = broken(
        "      PointInTimeRecoverySpecification:\n        PointInTimeRecoveryEnabled: true\n",
        "",
    );
    assert_rejected(&check("deploy-checkov", &bad, &[]), "CKV_AWS_28");
}

// ---- parliament ----

fn broken_policy(name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(crate_dir().join(format!("policies/{name}.json"))).unwrap();
    assert!(
        text.contains(from),
        "policies/{name}.json no longer contains {from:?}: update this test"
    );
    text.replacen(from, to, 1)
}

#[test]
fn parliament_rejects_a_dynamodb_star_action() {
    let bad = broken_policy(
        "execution-dynamodb",
        "\"dynamodb:DeleteItem\"",
        "\"dynamodb:*\"",
    );
    assert_rejected(
        &check(
            "deploy-parliament",
            &template_text(),
            &one_policy("execution-dynamodb", &bad),
        ),
        "No resources match",
    );
}

#[test]
fn parliament_rejects_an_unknown_action() {
    let bad = broken_policy(
        "execution-dynamodb",
        "\"dynamodb:PutItem\"",
        "\"dynamodb:PutItems\"",
    );
    assert_rejected(
        &check(
            "deploy-parliament",
            &template_text(),
            &one_policy("execution-dynamodb", &bad),
        ),
        "Unknown action",
    );
}

#[test]
fn parliament_rejects_list_streams_on_the_table() {
    let bad = broken_policy(
        "execution-stream",
        "\"Resource\": \"*\"",
        "\"Resource\": \"${MessagesTable.StreamArn}\"",
    );
    assert_rejected(
        &check(
            "deploy-parliament",
            &template_text(),
            &one_policy("execution-stream", &bad),
        ),
        "dynamodb:ListStreams",
    );
}

#[test]
fn a_placeholder_without_a_value_fails_the_policy_check() {
    let bad = broken_policy(
        "execution-failure-queue",
        "${FailureQueue.Arn}",
        "${OtherQueue.Arn}",
    );
    assert_rejected(
        &check(
            "deploy-parliament",
            &template_text(),
            &one_policy("execution-failure-queue", &bad),
        ),
        "placeholder without a value",
    );
}

// ---- cfn-guard (tests/guard/) ----

fn guard_rejects(bad: &str, rule: &str) {
    assert_rejected(&check("deploy-guard", bad, &[]), rule);
}

#[test]
fn guard_rejects_a_template_without_the_filter() {
    let text = template_text();
    let start = text.find("            FilterCriteria:").unwrap();
    let end = text.find("            DestinationConfig:").unwrap();
    let bad = format!("{}{}", &text[..start], &text[end..]);
    guard_rejects(&bad, "stream_event_filter");
}

#[test]
fn guard_rejects_a_dynamodb_star_action_in_the_role() {
    let bad = broken(
        "                  - dynamodb:GetShardIterator\n",
        "                  - dynamodb:*\n",
    );
    guard_rejects(&bad, "no_wildcard_actions_in_roles");
    // A policy under !If (the failure destination's) is checked too.
    let bad = broken(
        "                    - s3:PutObject\n",
        "                    - s3:*\n",
    );
    guard_rejects(&bad, "no_wildcard_actions_in_conditional_role_policies");
}

#[test]
fn guard_rejects_a_star_action_in_the_endpoint_policy() {
    let bad = broken(
        "            Action:\n              - dynamodb:DeleteItem\n              - dynamodb:PutItem\n              - dynamodb:Query\n              - dynamodb:UpdateItem\n",
        "            Action: \"*\"\n",
    );
    guard_rejects(&bad, "no_wildcard_actions_in_documents");
}

#[test]
fn guard_rejects_unbounded_retries() {
    guard_rejects(
        &broken("MaximumRetryAttempts: 5", "MaximumRetryAttempts: -1"),
        "stream_event_bounded_retries",
    );
    guard_rejects(
        &broken("            MaximumRecordAgeInSeconds: 3600\n", ""),
        "stream_event_bounded_retries",
    );
}

#[test]
fn guard_rejects_no_bisect_no_partial_failures_no_destination() {
    guard_rejects(
        &broken(
            "BisectBatchOnFunctionError: true",
            "BisectBatchOnFunctionError: false",
        ),
        "stream_event_bisect",
    );
    guard_rejects(
        &broken(
            "            FunctionResponseTypes:\n              - ReportBatchItemFailures\n",
            "",
        ),
        "stream_event_partial_failures",
    );
    guard_rejects(
        &broken(
            "            DestinationConfig:\n              OnFailure:\n                Destination: !If [FailuresToS3, !GetAtt FailureBucket.Arn, !GetAtt FailureQueue.Arn]\n",
            "",
        ),
        "stream_event_on_failure",
    );
}

#[test]
fn guard_rejects_x86_or_no_vpc() {
    guard_rejects(
        &broken("Architectures: [arm64]", "Architectures: [x86_64]"),
        "functions_arm64_in_vpc",
    );
    let text = template_text();
    let start = text.find("      VpcConfig:\n").unwrap();
    let end = text
        .find("      Environment:\n        Variables:\n")
        .unwrap();
    assert!(
        start < end,
        "VpcConfig no longer right before Environment: update this test"
    );
    guard_rejects(
        &format!("{}{}", &text[..start], &text[end..]),
        "functions_arm64_in_vpc",
    );
}

#[test]
fn guard_rejects_unencrypted_table_or_queue() {
    guard_rejects(
        &broken("        SSEEnabled: true", "        SSEEnabled: false"),
        "table_sse",
    );
    guard_rejects(
        &broken("      SqsManagedSseEnabled: true\n", ""),
        "queue_sse",
    );
}

#[test]
fn guard_rejects_a_cache_user_with_a_password_or_an_open_default_user() {
    guard_rejects(
        &broken(
            "      AuthenticationMode:\n        Type: iam\n",
            "      AuthenticationMode:\n        Type: password\n        Passwords: [not-a-secret-at-all]\n",
        ),
        "elasticache_users_iam_or_off",
    );
    guard_rejects(
        &broken(
            "      AccessString: off -@all\n",
            "      AccessString: on ~* +@all\n",
        ),
        "elasticache_users_iam_or_off",
    );
}

#[test]
fn guard_rejects_a_cache_without_users_or_open_to_an_address_range() {
    guard_rejects(
        &broken("      UserGroupId: !Ref CacheUserGroup\n", ""),
        "serverless_cache_access_controlled",
    );
    guard_rejects(
        &broken(
            "      SourceSecurityGroupId: !Ref CacheClientSecurityGroup\n",
            "      CidrIp: 10.0.0.0/8\n",
        ),
        "security_group_ingress_from_groups_only",
    );
}

#[test]
fn guard_rejects_a_template_without_a_stream_consumer() {
    guard_rejects(
        &broken("          Type: DynamoDB\n", "          Type: SQS\n"),
        "stream_consumer_present",
    );
}

#[test]
fn guard_rejects_a_public_unexpiring_or_plain_http_failure_bucket() {
    guard_rejects(
        &broken("        RestrictPublicBuckets: true\n", ""),
        "bucket_encrypted_private_expiring",
    );
    guard_rejects(
        &broken(
            "            ExpirationInDays: !Ref FailureRetentionDays\n",
            "",
        ),
        "bucket_encrypted_private_expiring",
    );
    let text = template_text();
    let start = text.find("  FailureBucketPolicy:\n").unwrap();
    let end = text
        .find("  # The on-failure destination when FailureDestination is SQS")
        .unwrap();
    guard_rejects(
        &format!("{}{}", &text[..start], &text[end..]),
        "bucket_tls_only",
    );
}
