//! The vocabulary every target shares: addresses, values and resources.
//!
//! Attribute names are Terraform's AWS provider names (`cidr_block`, `vpc_id`): a
//! well-documented vocabulary that the Terraform renderer writes as is and the AWS provider
//! maps to API calls, so there is one description of a resource, not one per target.

use std::collections::BTreeMap;
use std::fmt;

/// Attributes of a resource or of a nested block, sorted by name (as kops and `terraform fmt`
/// order them).
pub type Attrs = BTreeMap<String, Value>;

/// Whether an address names a managed resource or a read-only lookup (`data.aws_ami.x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// A resource the cluster owns: created, changed and deleted with it.
    Managed,
    /// A lookup of something that exists (`data.aws_ami.x`): read, never changed.
    Data,
}

/// A stable, kops-compatible resource address such as `aws_vpc.minimal-example-com`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// Managed resource or data source.
    pub mode: Mode,
    /// The Terraform resource type, e.g. `aws_vpc`.
    pub kind: String,
    /// The Terraform-safe name (see [`crate::names::tf_name`]), e.g. `minimal-example-com`.
    pub name: String,
}

impl Address {
    /// The address of a managed resource named `name` of type `kind`.
    pub fn new(kind: &str, name: &str) -> Address {
        Address {
            mode: Mode::Managed,
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }

    /// The address of a data source named `name` of type `kind`.
    pub fn data(kind: &str, name: &str) -> Address {
        Address {
            mode: Mode::Data,
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }

    /// A reference to one attribute of this resource (`aws_vpc.x.id`).
    pub fn attr(&self, attr: &str) -> Value {
        Value::Ref(Ref {
            address: self.clone(),
            attr: attr.to_string(),
        })
    }

    /// A reference to this resource's `id`.
    pub fn id(&self) -> Value {
        self.attr("id")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            Mode::Managed => write!(f, "{}.{}", self.kind, self.name),
            Mode::Data => write!(f, "data.{}.{}", self.kind, self.name),
        }
    }
}

/// A reference to an attribute another resource gets when it exists (an ID, an ARN).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ref {
    /// The resource referred to.
    pub address: Address,
    /// The attribute read from it, e.g. `id` or `arn`.
    pub attr: String,
}

/// A large value kept in its own file (`data/<name>`): policies, user-data, public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileValue {
    /// The file's name under `data/`, e.g. `aws_iam_role_nodes-a-example-com_policy`.
    pub name: String,
    /// The file's content, as written (before any base64 or gzip).
    pub content: String,
    /// Written as `filebase64()` (user-data) rather than `file()`.
    pub base64: bool,
    /// Gzip-compressed before the base64 (user-data over EC2's 16 KB when plain; cloud-init
    /// decompresses it). Terraform gets `base64gzip(file())`.
    pub gzip: bool,
    /// Values only known once other resources exist (an OIDC provider's ARN): the content
    /// holds `${name}` for each, Terraform gets `templatefile()`, the AWS target substitutes.
    pub vars: BTreeMap<String, Ref>,
}

impl FileValue {
    /// A plain file value: no base64, no gzip, no variables.
    pub fn new(name: impl Into<String>, content: impl Into<String>) -> FileValue {
        FileValue {
            name: name.into(),
            content: content.into(),
            base64: false,
            gzip: false,
            vars: BTreeMap::new(),
        }
    }
}

/// An attribute value, in the Terraform AWS provider's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value: a top-level attribute is left out; inside a list or map it is `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (ports, sizes, counts).
    Int(i64),
    /// A string.
    Str(String),
    /// A list of values.
    List(Vec<Value>),
    /// An attribute whose value is a map (`tags = { ... }`).
    Map(BTreeMap<String, Value>),
    /// Nested blocks (`launch_template { ... }`, repeated `tag { ... }`).
    Blocks(Vec<Attrs>),
    /// A reference to another resource's attribute, which makes that resource a dependency.
    Ref(Ref),
    /// A value kept in its own file (see [`FileValue`]).
    File(FileValue),
    /// A Terraform expression with no AWS meaning (only used in outputs).
    Expr(String),
    /// The `index`th `/prefix` block inside the block `base` refers to (a VPC's IPv6
    /// block): kops's `/64#N` subnet CIDRs, only known once the VPC has its block.
    CidrSubnet {
        /// The VPC's `ipv6_cidr_block` (of the cluster's VPC, or a data source for a shared one).
        base: Ref,
        /// The prefix length of the subnet's block, e.g. 64 for `/64#1`.
        prefix: u8,
        /// Which block of that length, counting from 0 (the `N` of `/64#N`, hex in the spec).
        index: u64,
    },
}

impl Value {
    /// A [`Value::Str`].
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A [`Value::List`] of strings.
    pub fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
        Value::List(items.into_iter().map(|s| Value::Str(s.into())).collect())
    }

    /// One nested block (`Value::Blocks` with a single entry).
    pub fn block(attrs: Attrs) -> Value {
        Value::Blocks(vec![attrs])
    }

    /// The string, if this is a [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, if this is a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Every reference inside this value, depth first.
    pub fn refs<'a>(&'a self, out: &mut Vec<&'a Ref>) {
        match self {
            Value::Ref(r) | Value::CidrSubnet { base: r, .. } => out.push(r),
            Value::File(f) => out.extend(f.vars.values()),
            Value::List(items) => items.iter().for_each(|v| v.refs(out)),
            Value::Map(map) => map.values().for_each(|v| v.refs(out)),
            Value::Blocks(blocks) => blocks
                .iter()
                .flat_map(|b| b.values())
                .for_each(|v| v.refs(out)),
            _ => {}
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i.into())
    }
}
impl From<Attrs> for Value {
    fn from(map: Attrs) -> Value {
        Value::Map(map)
    }
}

/// Builds an [`Attrs`] map: `attrs! { "cidr_block" => "10.0.0.0/16", "vpc_id" => vpc.id() }`.
#[macro_export]
macro_rules! attrs {
    ($($key:expr => $value:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut map = $crate::Attrs::new();
        $( map.insert(($key).to_string(), $crate::Value::from($value)); )*
        map
    }};
}

/// One resource of the desired set.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Where the resource is: kind and name.
    pub address: Address,
    /// Its attributes, with references to the resources it depends on.
    pub attrs: Attrs,
}

impl Resource {
    /// The value of attribute `attr`, if set.
    pub fn get(&self, attr: &str) -> Option<&Value> {
        self.attrs.get(attr)
    }

    /// The value of attribute `attr`, if set and a string.
    pub fn str(&self, attr: &str) -> Option<&str> {
        self.attrs.get(attr).and_then(Value::as_str)
    }

    /// The tags map, if the resource has one.
    pub fn tags(&self) -> Option<&BTreeMap<String, Value>> {
        match self.attrs.get("tags") {
            Some(Value::Map(map)) => Some(map),
            _ => None,
        }
    }

    /// The addresses this resource refers to (its dependencies), without duplicates.
    pub fn dependencies(&self) -> Vec<&Address> {
        let mut refs = Vec::new();
        for value in self.attrs.values() {
            value.refs(&mut refs);
        }
        let mut out: Vec<&Address> = refs.into_iter().map(|r| &r.address).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A resource that exists outside the cluster (a VPC or subnet made by Terraform): used and
/// checked, never changed or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// The Terraform type it would have, e.g. `aws_vpc` or `aws_subnet`.
    pub kind: String,
    /// Its AWS ID, e.g. `vpc-0123456789abcdef0`.
    pub id: String,
    /// Where the spec names it (`spec.networkID`), for error messages.
    pub field: String,
    /// What the spec says it is: each checked before anything changes.
    pub expect: Vec<Expected>,
}

/// One property an existing resource must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The attribute (`cidr_block`, `availability_zone`, `vpc_id`, `state`).
    pub attr: String,
    /// The value the spec implies.
    pub value: String,
    /// The spec field that says so (`spec.subnets[a].cidr`), for error messages.
    pub field: String,
}

impl Existing {
    /// An existing resource named by `field`, with nothing expected yet.
    pub fn new(kind: &str, id: &str, field: impl Into<String>) -> Existing {
        Existing {
            kind: kind.to_string(),
            id: id.to_string(),
            field: field.into(),
            expect: Vec::new(),
        }
    }

    /// Expects `attr` to be `value`, as `field` says (nothing when the spec is silent).
    pub fn expect(mut self, attr: &str, value: Option<&str>, field: impl Into<String>) -> Self {
        if let Some(value) = value {
            self.expect.push(Expected {
                attr: attr.to_string(),
                value: value.to_string(),
                field: field.into(),
            });
        }
        self
    }
}
