//! Views keyed by label values: one count per value of a bounded label set, and maybe figures
//! of their own. [`labelled_view!`] declares such a view from one list of fields, each keyed
//! by a label value (`= MethodLabel::Get.as_str()`) or by its own name, and implements its
//! `Serialize` and its OpenAPI schema from that list, so that a label value is written once,
//! on its label enum, and never again as a field name or a `rename`.

use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, RefBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use super::LatencySeconds;

/// Declares a view struct (public fields, `Debug`, `Clone`) whose JSON key and schema property
/// for each field is the label value after `=`, or the field's name without one; implements
/// `Serialize`, `utoipa::PartialSchema` and `utoipa::ToSchema` from the same list (the doc
/// comments are the schema's descriptions, as the derives make them).
macro_rules! labelled_view {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $field_doc:literal])*
                pub $field:ident: $ty:ty $(= $label:expr)?,
            )*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            $(
                $(#[doc = $field_doc])*
                pub $field: $ty,
            )*
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct as _;
                let fields = [$(stringify!($field)),*].len();
                let mut object = serializer.serialize_struct(stringify!($name), fields)?;
                $(
                    object.serialize_field(
                        $crate::views::labelled::labelled_view!(@key $field $(= $label)?),
                        &self.$field,
                    )?;
                )*
                object.end()
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let object = $crate::views::labelled::object(&[$($doc),*]);
                $(
                    let object = $crate::views::labelled::field::<$ty>(
                        object,
                        $crate::views::labelled::labelled_view!(@key $field $(= $label)?),
                        &[$($field_doc),*],
                    );
                )*
                object.into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
    (@key $field:ident = $label:expr) => {
        $label
    };
    (@key $field:ident) => {
        stringify!($field)
    };
}

pub(crate) use labelled_view;

/// A doc comment as the derives turn it into a description: each line without the space
/// after `///`, trailing whitespace dropped, joined by newlines.
fn description(doc: &[&str]) -> String {
    doc.iter()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The object schema of a view documented by `doc`, without properties yet.
pub(crate) fn object(doc: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description(doc)))
}

/// `object` with the property `key` of type `T` documented by `doc` (required unless `T` is
/// an `Option`).
pub(crate) fn field<T: FieldSchema>(
    object: ObjectBuilder,
    key: &str,
    doc: &[&str],
) -> ObjectBuilder {
    let object = object.property(key, T::schema(description(doc)));
    if T::REQUIRED {
        object.required(key)
    } else {
        object
    }
}

/// The schema of a field of a labelled view, as the `ToSchema` derive writes it.
pub(crate) trait FieldSchema {
    /// Whether the field is required (not an `Option`).
    const REQUIRED: bool;

    /// The property's schema, with its description.
    fn schema(description: String) -> RefOr<Schema>;
}

impl FieldSchema for u64 {
    const REQUIRED: bool = true;

    fn schema(description: String) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .description(Some(description))
            .into()
    }
}

impl FieldSchema for Option<f64> {
    const REQUIRED: bool = false;

    fn schema(description: String) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
            .description(Some(description))
            .into()
    }
}

impl FieldSchema for LatencySeconds {
    const REQUIRED: bool = true;

    fn schema(description: String) -> RefOr<Schema> {
        RefBuilder::new()
            .ref_location_from_schema_name(Self::name())
            .description(Some(description))
            .into()
    }
}
